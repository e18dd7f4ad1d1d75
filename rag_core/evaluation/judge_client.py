"""The judge's LLM client: RAGAS' instructor adapter over an ``AsyncAnthropic`` client whose
``messages.create`` makes every judge call one engine call.

:func:`build_kit` makes, per event loop and configuration, one ``AsyncAnthropic`` client (SDK retries
off) and its RAGAS LLM (``llm_factory(model, provider="anthropic", client=…)`` with ``temperature``
and ``top_p`` removed, ``max_tokens`` raised and instructor's re-ask budget set). Its
``messages.create`` — what instructor calls for every judge request, re-asks included — is wrapped:

1. The request is reshaped by :func:`~rag_core.evaluation.judge_prompt.judge_request` (data-only
   system rule, escaped input, cache-marked static prefix when ``settings.prompt_cache``).
2. Online, it is sent through :func:`~rag_core.engine.remote_call` labelled
   ``"<metric> · call <n>"``: its own slot of the run's gate, timeout, retry budget and timeline
   row; a metric coroutine holds no slot between its calls. In batch mode it goes to the scoring
   batch's :class:`~rag_core.evaluation.judge_batches.JudgeBatcher` instead.
3. Every attempt is counted when sent (:func:`rag_core.usage.request_sent`); ``anthropic`` errors are
   mapped once (:func:`~rag_core.answer.api_errors.map_api_error`, redacted) and a call that fails for
   good raises a :class:`~rag_core.errors.RagError` whose message starts ``"judge call <n> failed:"``.

The per-job :class:`~rag_core.evaluation.base._Trace` (a context variable set by the scoring job)
names the metric and the judged item and collects calls, tokens and RAGAS' parsed outputs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from rag_core.answer.api_errors import map_api_error
from rag_core.engine import remote_call
from rag_core.errors import EvaluationError, RagError
from rag_core.evaluation.base import _TRACE, _Trace
from rag_core.evaluation.judge_batches import judge_custom_id
from rag_core.evaluation.judge_prompt import judge_request
from rag_core.settings import Settings
from rag_core.usage import estimate_tokens, request_done, request_sent

__all__ = ["JUDGE_PARSE_RETRIES", "build_kit"]

JUDGE_PARSE_RETRIES = 1
"""instructor re-asks once when the judge's tool call does not match RAGAS' schema (one more call)."""


@dataclass
class _JudgeKit:
    """One AsyncAnthropic client and its RAGAS LLM, shared by every judge suite on one loop."""

    client: Any
    llm: Any


def _add_usage(trace: _Trace, usage: Any) -> None:
    if usage is None:
        return
    for field, attr in (
        ("input_tokens", "input_tokens"),
        ("output_tokens", "output_tokens"),
        ("cache_write_tokens", "cache_creation_input_tokens"),
        ("cache_read_tokens", "cache_read_input_tokens"),
    ):
        setattr(trace, field, getattr(trace, field) + int(getattr(usage, attr, 0) or 0))


def build_kit(s: Settings) -> _JudgeKit:
    """The client and RAGAS LLM for settings ``s`` (call on the loop that will use them)."""
    import anthropic
    from anthropic import AsyncAnthropic
    from ragas.llms import InstructorLLM, llm_factory

    client = AsyncAnthropic(
        api_key=s.api_key.get(),
        base_url=s.base_url,
        max_retries=0,
        timeout=s.request_timeout_s,
    )
    messages = client.messages
    original = messages.create

    def mapped(exc: BaseException) -> RagError:
        return map_api_error(
            exc,
            model=s.judge_model,
            base_url=s.base_url,
            timeout_s=s.request_timeout_s,
            secret=s.api_key.get(),
        )

    @functools.wraps(original)
    async def judged_create(*args: Any, **kwargs: Any) -> Any:
        trace = _TRACE.get() or _Trace()
        request = judge_request(kwargs, cache=s.prompt_cache)
        trace.logical_calls += 1
        n = trace.logical_calls
        model = str(request.get("model") or s.judge_model)
        est = estimate_tokens(request.get("tools"), request.get("system"), request.get("messages"))

        async def send() -> Any:  # one attempt: remote_call owns the slot, timeout and retries
            trace.calls += 1
            await request_sent(model, est)  # counted from the moment it is sent (rag_core.usage)
            try:
                response = await original(*args, **request)
            except anthropic.APIStatusError as exc:
                request_done(model, est)  # an error response is not billed
                raise mapped(exc) from exc
            except anthropic.AnthropicError as exc:
                request_done(model, est, responded=False)  # may have been billed: keep the estimate
                raise mapped(exc) from exc
            except BaseException:
                request_done(model, est, responded=False)
                raise
            request_done(model, est, usage=getattr(response, "usage", None))
            return response

        try:
            if trace.batcher is not None:
                cid = judge_custom_id(trace.item_key, n, request)
                response, attempts = await trace.batcher.submit(request, custom_id=cid)
                trace.calls += attempts
                if attempts == 0:  # answered from a batch an earlier attempt of the run paid for
                    return response
            else:
                response = await remote_call(send, label=f"{trace.metric or 'judge'} · call {n}")
        except RagError as err:
            err.args = (f"judge call {n} failed: {err}",)
            raise
        _add_usage(trace, getattr(response, "usage", None))
        return response

    # Deliberately wraps this client's bound method (instructor patches it in turn below).
    messages.create = judged_create  # type: ignore[method-assign]
    try:
        llm = llm_factory(s.judge_model, provider="anthropic", client=client)
    except Exception as exc:
        raise EvaluationError(f"Could not set up the judge model {s.judge_model!r}: {exc}") from exc
    if not isinstance(llm, InstructorLLM):  # model_args below exist only on the instructor adapter
        raise EvaluationError(
            f"The installed ragas returned a {type(llm).__name__} judge for provider 'anthropic'; "
            "this app needs its instructor adapter. Reinstall the pinned requirements."
        )
    llm.model_args.pop("temperature", None)
    llm.model_args.pop("top_p", None)
    llm.model_args["max_tokens"] = int(s.judge_max_tokens)
    llm.model_args["max_retries"] = JUDGE_PARSE_RETRIES
    agenerate = llm.agenerate

    async def traced_agenerate(prompt: str, response_model: Any) -> Any:
        out = await agenerate(prompt, response_model)
        trace = _TRACE.get()
        if trace is not None:
            trace.outputs.append(out)
        return out

    llm.agenerate = traced_agenerate  # type: ignore[method-assign]  # per-instance trace hook
    return _JudgeKit(client=client, llm=llm)
