"""The loopback Messages API stand-in itself: valid responses, faults, counters, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.anthropic_server import NOT_COVERED, FakeAnthropic, FaultPlan, default_responder

ROOT = Path(__file__).resolve().parents[2]


def post(
    url: str, body: dict[str, Any], key: str = "sk-test-not-a-real-key"
) -> tuple[int, dict[str, Any], Any]:
    req = urllib.request.Request(
        url + "/v1/messages",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", "x-api-key": key},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


BODY = {
    "model": "claude-x",
    "max_tokens": 50,
    "messages": [
        {
            "role": "user",
            "content": (
                '<policy_context>\n<chunk id="1" source="a &amp; b.pdf" page="7">\nLeave is 20 days. Other text.\n'
                "</chunk>\n</policy_context>\n\n<question>\nHow much leave?\n</question>"
            ),
        }
    ],
}


def test_answers_are_valid_messages_json() -> None:
    with FakeAnthropic(requests_remaining=41) as srv:
        status, msg, headers = post(srv.base_url, BODY)
        assert status == 200
        assert msg["type"] == "message" and msg["role"] == "assistant" and msg["model"] == "claude-x"
        assert msg["content"] == [{"type": "text", "text": "Leave is 20 days. (a & b.pdf, p. 7)"}]
        assert msg["stop_reason"] == "end_turn" and msg["usage"]["input_tokens"] > 0
        assert headers["anthropic-ratelimit-requests-remaining"] == "41"
        (log,) = srv.requests
        assert log.question == "How much leave?" and log.status == 200 and log.has_key


def test_default_responder_without_context_is_not_covered() -> None:
    assert default_responder({"messages": [{"role": "user", "content": "hello"}]}) == NOT_COVERED


def test_custom_responder_can_return_tool_use_blocks() -> None:
    block = {"type": "tool_use", "id": "toolu_1", "name": "out", "input": {"score": 1}}
    with FakeAnthropic(responder=lambda body: [block]) as srv:
        _, msg, _ = post(srv.base_url, BODY)
    assert msg["content"] == [block] and msg["stop_reason"] == "tool_use"


def test_scheduled_faults_use_anthropic_error_shape() -> None:
    plan = FaultPlan(schedule={0: "429", 1: "529", 2: "401", 3: "500"}, retry_after=3)
    with FakeAnthropic(faults=plan) as srv:
        out = [post(srv.base_url, BODY) for _ in range(5)]
    assert [s for s, _, _ in out] == [429, 529, 401, 500, 200]
    assert out[0][2]["retry-after"] == "3"
    assert out[0][1]["type"] == "error" and out[0][1]["error"]["type"] == "rate_limit_error"
    assert out[1][1]["error"]["type"] == "overloaded_error"
    assert out[2][1]["error"]["type"] == "authentication_error"


def test_rates_are_seeded_and_reproducible() -> None:
    a = FaultPlan(rate_429=0.3, rate_hang=0.1, seed=3)
    b = FaultPlan(rate_429=0.3, rate_hang=0.1, seed=3)
    fa = [a.fault_for(i) for i in range(200)]
    assert fa == [b.fault_for(i) for i in range(200)]
    assert 40 <= fa.count("429") <= 80 and 8 <= fa.count("hang") <= 35


def test_wrong_key_gets_401() -> None:
    with FakeAnthropic(api_key="sk-right") as srv:
        assert post(srv.base_url, BODY, key="sk-wrong")[0] == 401
        assert post(srv.base_url, BODY, key="sk-right")[0] == 200


def test_counts_peak_concurrency() -> None:
    with FakeAnthropic(latency=0.3) as srv:
        threads = [threading.Thread(target=post, args=(srv.base_url, BODY)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert srv.peak_concurrency == 6 and srv.count == 6 and srv.in_flight == 0


def test_load_driven_limit_returns_429() -> None:
    with FakeAnthropic(latency=0.3, max_concurrent=2) as srv:
        out: list[int] = []
        threads = [threading.Thread(target=lambda: out.append(post(srv.base_url, BODY)[0])) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert sorted(out) == [200, 200, 429, 429, 429]


def test_cli_prints_ready_and_serves_until_killed() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.anthropic_server",
            "--port",
            "0",
            "--latency",
            "0",
            "--schedule",
            "0:529",
            "--max-seconds",
            "60",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split()[1]
        assert post(url, BODY)[0] == 529
        assert post(url, BODY)[0] == 200
        with urllib.request.urlopen(url + "/_fake/stats", timeout=5) as resp:
            stats = json.loads(resp.read())
        assert stats["count"] == 2 and stats["by_fault"] == {"529": 1, "ok": 1}
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_closes_promptly_even_with_a_hanging_request() -> None:
    srv = FakeAnthropic(faults=FaultPlan(schedule={0: "hang"}), hang_s=60).start()

    def client() -> None:
        try:
            post(srv.base_url, BODY)
        except Exception:
            pass  # the connection is dropped when the server closes

    t = threading.Thread(target=client, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while srv.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    srv.close()
    assert time.monotonic() - t0 < 3


# --- prompt caching and header echo (issue 11) ------------------------------------------------------
def _cached_body(
    prefix_chars: int, model: str = "claude-sonnet-4-5", tail: str = "Which one?"
) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 50,
        "system": [{"type": "text", "text": "You are a judge."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x" * prefix_chars, "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": tail},
                ],
            }
        ],
    }


def test_cache_usage_is_a_write_the_first_time_and_a_read_within_five_minutes() -> None:
    with FakeAnthropic() as srv:
        first = post(srv.base_url, _cached_body(4400))[1]["usage"]
        second = post(srv.base_url, _cached_body(4400, tail="Another input, same prefix."))[1]["usage"]
        short = post(srv.base_url, _cached_body(3000))[1]["usage"]  # ≈ 755 tokens: below the minimum
        haiku = post(srv.base_url, _cached_body(4400, model="claude-haiku-4-5"))[1]["usage"]
        plain = post(srv.base_url, BODY)[1]["usage"]
        totals = srv.tokens
    prefix = (len("You are a judge.") + 3) // 4 + 4400 // 4  # system + the marked block, chars / 4
    assert first["cache_creation_input_tokens"] == prefix and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == prefix and second["cache_creation_input_tokens"] == 0
    assert first["input_tokens"] == (len("Which one?") + 3) // 4  # cached tokens are not input tokens
    assert short["cache_creation_input_tokens"] == short["cache_read_input_tokens"] == 0
    assert short["input_tokens"] > 700
    assert haiku["cache_creation_input_tokens"] == 0  # Haiku needs 2,048 tokens
    assert plain["cache_creation_input_tokens"] == plain["cache_read_input_tokens"] == 0
    assert totals["cache_write"] == prefix and totals["cache_read"] == prefix


def test_cache_entries_expire_after_five_minutes_without_use() -> None:
    import tests.support.anthropic_server as standin

    with FakeAnthropic() as srv:
        post(srv.base_url, _cached_body(4400))
        with srv._lock:  # age every entry past the TTL
            srv._cache = {k: v - standin.CACHE_TTL_S - 1 for k, v in srv._cache.items()}
        again = post(srv.base_url, _cached_body(4400))[1]["usage"]
    assert again["cache_creation_input_tokens"] > 0 and again["cache_read_input_tokens"] == 0


def test_echo_headers_mode_puts_the_credentials_in_error_bodies() -> None:
    """The hostile server the key-leak tests need: it really echoes the key back."""
    plan = FaultPlan(schedule={0: "429"})
    with FakeAnthropic(faults=plan, echo_headers=True) as srv:
        status, body, _ = post(srv.base_url, BODY, key="sk-test-echo-me-please")
        ok_status, ok_body, _ = post(srv.base_url, BODY, key="sk-test-echo-me-please")
    assert status == 429 and "sk-test-echo-me-please" in body["error"]["message"]
    assert "x-api-key" in body["error"]["message"].lower()
    assert ok_status == 200 and "sk-test" not in json.dumps(ok_body)
