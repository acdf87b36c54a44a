"""Hand-made comparison records for the preference export / import tests: one of every kind of vote."""

from __future__ import annotations

from playground.ratings.store import ComparisonRecord, Side

EARLIER = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}]


def record(winner: str | None = "a", *, prompt: str = "Explain the moon landing.", system: str = "",
           strength: int | None = None, left: str = "a", blind: bool = False, model_a: str | None = "gemma",
           model_b: str | None = "smollm", adapter_b: str | None = None, history_a: list | None = None,
           earlier: list | None = None, answer_a: str = "People flew to the moon in 1969.",
           answer_b: str = "The moon is made of cheese.", voted_at: str = "2025-03-01T12:00:00.123456+00:00",
           rater: str = "ann", record_id: str | None = None) -> ComparisonRecord:
    """A voted comparison; every argument is one thing a test may want to vary."""
    extra = {"id": record_id} if record_id else {}
    return ComparisonRecord(
        messages=[dict(m) for m in (earlier or [])] + [{"role": "user", "content": prompt}],
        system_prompt=system,
        a=Side(model=model_a, response=answer_a, history=history_a, params={"seed": 1}),
        b=Side(model=model_b, adapter=adapter_b, response=answer_b),
        winner=winner, strength=strength, left_side=left, blind=blind, rater=rater, voted_at=voted_at, **extra)


def sample_records() -> list[ComparisonRecord]:
    """Eight votes: clear wins both ways (with and without strength / system prompt / adapter / earlier turns),
    a blind one shown swapped, a non-ASCII one, a tie, a both-bad vote and a multi-turn pair with different
    earlier turns per side."""
    return [
        record("a", strength=5, system="Answer briefly."),
        record("b", prompt="Write a haiku about the sea.", adapter_b="runs/dpo-1", answer_b="Waves fold into foam"),
        record("a", prompt="Continue the story.", earlier=EARLIER, strength=2),
        record("b", prompt="달은 무엇인가요?", left="b", blind=True, answer_a="모르겠어요.", answer_b="달은 지구의 위성입니다."),
        record("a", prompt="2 + 2 = ?", answer_a="4", answer_b="5", strength=3, voted_at="2025-03-02T08:30:00+00:00"),
        record("tie", prompt="Say hi."),
        record("both_bad", prompt="Translate to French: cat", answer_a="dog", answer_b="Katze"),
        record("a", prompt="And then?", history_a=[{"role": "user", "content": "Tell a story."},
                                                   {"role": "assistant", "content": "Once upon a time…"}]),
    ]
