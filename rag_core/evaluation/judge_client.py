"""The judge's LLM client: RAGAS' LLM object over an ``AsyncAnthropic`` client, each judge call one
engine call.

:func:`build_kit` makes, per event loop and configuration, one ``AsyncAnthropic`` client (SDK retries
off) and its RAGAS LLM (``llm_factory(model, provider="anthropic", client=…)``: the instructor
adapter RAGAS' collections metrics require). The LLM's ``agenerate`` — what a metric calls for each
structured judgement — is replaced per instance by :func:`_structured_call`, which makes the
request the way instructor's Anthropic tools mode does (the same tool schema from
``instructor.openai_schema``, built once per output model; forced tool choice; strict validation of
the single ``tool_use`` block; one re-ask with the validation error) without instructor's per-call
schema rebuilding (about 40 % of the client CPU per judge call on the engine's loop thread). No
``temperature``/``top_p`` are sent (anthropic 2.x rejects them with some models); ``max_tokens`` is
``settings.judge_max_tokens``. Every request — re-asks included — goes through the wrapped
``messages.create``:

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
"""Re-asks (as instructor would) when the judge's tool call does not match RAGAS' schema: one more call."""


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

    # Deliberately wraps this client's bound method (the one place every judge request passes).
    messages.create = judged_create  # type: ignore[method-assign]
    try:
        llm = llm_factory(s.judge_model, provider="anthropic", client=client)
    except Exception as exc:
        raise EvaluationError(f"Could not set up the judge model {s.judge_model!r}: {exc}") from exc
    if not isinstance(llm, InstructorLLM):  # what the collections metrics accept
        raise EvaluationError(
            f"The installed ragas returned a {type(llm).__name__} judge for provider 'anthropic'; "
            "this app needs its instructor adapter. Reinstall the pinned requirements."
        )

    async def structured(prompt: str, response_model: Any) -> Any:
        out = await _structured_call(judged_create, prompt, response_model, s)
        trace = _TRACE.get()
        if trace is not None:
            trace.outputs.append(out)
        return out

    llm.agenerate = structured  # type: ignore[method-assign]  # per-instance: see _structured_call
    return _JudgeKit(client=client, llm=llm)


_TOOLS: dict[Any, dict[str, Any]] = {}


def _tool(response_model: Any) -> dict[str, Any]:
    """The Anthropic tool for a RAGAS output model: instructor's own schema, built once per model."""
    tool = _TOOLS.get(response_model)
    if tool is None:
        from instructor import openai_schema

        tool = _TOOLS[response_model] = dict(openai_schema(response_model).anthropic_schema)
    return tool


def _reask(response: Any, exc: Exception) -> list[dict[str, Any]]:
    """instructor's re-ask for Anthropic tools: the reply, then the validation error as its result."""
    error = f"Validation Error found:\n{exc}\nRecall the function correctly, fix the errors"
    content = [c.model_dump(exclude_none=True) for c in getattr(response, "content", None) or []]
    ids = [c["id"] for c in content if c.get("type") == "tool_use"]
    if not ids:
        return [
            {"role": "assistant", "content": content or [{"type": "text", "text": "(no answer)"}]},
            {"role": "user", "content": error},
        ]
    return [
        {"role": "assistant", "content": content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": i, "content": error, "is_error": True} for i in ids
            ],
        },
    ]


async def _structured_call(create: Any, prompt: str, response_model: Any, s: Settings) -> Any:
    """RAGAS' structured judge request, the way instructor's Anthropic tools mode makes it — the same
    tool schema, forced tool choice, strict validation of the one ``tool_use`` block and one re-ask
    (:data:`JUDGE_PARSE_RETRIES`) with the validation error — without instructor's per-call work
    (it rebuilds the tool schema and re-checks the model on every call: about 40 % of the judge's CPU
    time on the engine's loop thread)."""
    import json

    tool = _tool(response_model)
    kwargs: dict[str, Any] = {
        "model": s.judge_model,
        "max_tokens": int(s.judge_max_tokens),
        "messages": [{"role": "user", "content": prompt}],
        "tools": [tool],
        "tool_choice": {"type": "tool", "name": tool["name"], "disable_parallel_tool_use": True},
    }
    for _ in range(JUDGE_PARSE_RETRIES + 1):
        response = await create(**kwargs)
        if getattr(response, "stop_reason", None) == "max_tokens":
            raise EvaluationError(
                f"the judge's answer was cut off at max_tokens={s.judge_max_tokens}; raise RAG_JUDGE_MAX_TOKENS."
            )
        uses = [c for c in getattr(response, "content", None) or [] if getattr(c, "type", None) == "tool_use"]
        try:
            if len(uses) != 1:
                raise ValueError(f"expected exactly one call of the tool {tool['name']}, got {len(uses)}")
            return response_model.model_validate_json(json.dumps(uses[0].input), strict=True)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            kwargs = {**kwargs, "messages": [*kwargs["messages"], *_reask(response, exc)]}
    raise EvaluationError(
        "the judge's answer did not match the structure RAGAS expects, "
        f"even after {JUDGE_PARSE_RETRIES + 1} attempts."
    )
