"""SSE parsing and per-choice stream filtering, without sockets."""

from __future__ import annotations

import json
from typing import Any

from llm_serving import policy
from llm_serving.gateway import sse
from llm_serving.guardrails import pipeline

EMAIL = "ann.lee@example.com"


def _chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": choices, **extra})


def _delta(index: int, content: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"index": index, "delta": delta, "finish_reason": finish}


def _decode(events: list[bytes]) -> list[Any]:
    out = []
    for event in events:
        data = event.decode().removeprefix("data: ").strip()
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def _filter(forward_usage: bool = False) -> tuple[sse.StreamFilter, list[pipeline.Finding]]:
    seen: list[pipeline.Finding] = []
    guard = pipeline.OutputGuard(policy.OutputGuardrails())
    return sse.StreamFilter(guard, True, forward_usage, seen.extend), seen


def test_splitter_handles_any_boundaries_and_crlf() -> None:
    stream = b': comment\r\n\r\ndata: {"a": 1}\r\n\r\ndata: [DONE]\n\n'
    for size in (1, 2, 5, len(stream)):
        splitter = sse.EventSplitter()
        events = []
        for start in range(0, len(stream), size):
            events.extend(splitter.feed(stream[start : start + size]))
        events.extend(splitter.close())
        assert events == ['{"a": 1}', "[DONE]"]


def test_splitter_joins_multiline_data_and_flushes_unterminated_event() -> None:
    splitter = sse.EventSplitter()
    assert splitter.feed(b"data: one\ndata: two\n\ndata: tail") == ["one\ntwo"]
    assert splitter.close() == ["tail"]


def test_choices_are_scanned_independently() -> None:
    stream_filter, seen = _filter()
    texts: dict[int, str] = {0: "", 1: ""}
    first = "My address is ann.lee@exa"
    for data in (
        _chunk([_delta(0, first), _delta(1, "Nothing personal here at all, ")]),
        _chunk([_delta(0, "mple.com, write soon."), _delta(1, "just a plain reply.")]),
        _chunk([_delta(0, None, "stop"), _delta(1, None, "stop")]),
        "[DONE]",
    ):
        for event in _decode(stream_filter.feed(data).events):
            if event == "[DONE]":
                continue
            for choice in event["choices"]:
                texts[choice["index"]] += choice["delta"].get("content", "")
    assert EMAIL not in texts[0]
    assert texts[0].startswith("My address is ")
    assert texts[0].endswith(", write soon.")
    assert texts[1] == "Nothing personal here at all, just a plain reply."
    assert [f.check for f in seen] == ["pii"]


def test_usage_chunk_dropped_unless_asked_and_recorded() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    for forward in (False, True):
        stream_filter, _ = _filter(forward)
        output = stream_filter.feed(_chunk([], usage=usage))
        assert stream_filter.usage == sse.Usage(5, 2)
        assert bool(output.events) is forward


def test_engine_errors_and_unparsable_events_pass_through() -> None:
    stream_filter, _ = _filter()
    error = json.dumps({"error": {"message": "boom", "type": "InternalServerError"}})
    assert _decode(stream_filter.feed(error).events) == [json.loads(error)]
    assert stream_filter.feed("not json").events == [b"data: not json\n\n"]


def test_block_ends_the_stream_once() -> None:
    stream_filter, _ = _filter()
    toxic = "You are a stupid idiot and I hate you, fuck off. "
    output = stream_filter.feed(_chunk([_delta(0, toxic)]))
    assert output.done
    assert output.blocked is not None
    events = _decode(output.events)
    assert events[0]["error"]["type"] == "guardrail_violation"
    assert events[1] == "[DONE]"
    assert stream_filter.feed("[DONE]").events == []


def test_without_guard_chunks_pass_unchanged_and_done_is_added_at_eof() -> None:
    stream_filter = sse.StreamFilter(None, False, True, lambda findings: None)
    data = json.dumps({"choices": [{"index": 0, "text": EMAIL, "finish_reason": None}]})
    assert _decode(stream_filter.feed(data).events)[0]["choices"][0]["text"] == EMAIL
    assert stream_filter.end_of_stream().events == [sse.DONE]


def test_a_field_switch_flushes_the_field_before_it() -> None:
    """Reasoning, then content: the reasoning's held-back end goes out as the content starts."""
    stream_filter, _ = _filter()
    deltas = [{"reasoning": "Let me think about it"}, {"reasoning": " carefully"}]
    deltas += [{"content": "The answer"}, {"content": " is four."}]
    out: list[Any] = []
    for delta in deltas:
        data = _chunk([{"index": 0, "delta": delta, "finish_reason": None}])
        out += _decode(stream_filter.feed(data).events)
    reasoning = content = ""
    for event in out:
        for choice in event["choices"]:
            content += choice["delta"].get("content") or ""
            reasoning += choice["delta"].get("reasoning") or ""
            if content:
                assert reasoning == "Let me think about it carefully"
    assert content.startswith("The answer")
