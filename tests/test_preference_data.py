"""Preference pairs for reward/DPO runs: every source, checked uploads, the seeded split, and how a pair becomes
tokens (the same ids in training and scoring)."""

from __future__ import annotations

import json

import pytest

from playground.data import preference_pairs
from playground.data.preference_pairs import (
    PreferenceDataError,
    encode,
    encode_answer,
    encode_prompt,
    fit,
    load_pairs,
    run_pairs,
    split,
)
from playground.ratings.store import Store
from playground.train.config import RewardConfig
from tests.preference_records import sample_records
from tests.tiny_models import build_tokenizer


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_votes_become_pairs_as_export_makes_them(settings):
    with pytest.raises(PreferenceDataError, match="no votes yet"):
        load_pairs("votes", settings)
    store = Store(settings.ratings_db)
    store.insert_many(sample_records())
    pairs = load_pairs("votes", settings)
    # 8 votes: a tie, a both-bad and a multi-turn pair with different earlier turns are left out, as in Export.
    assert len(pairs) == 5
    first = next(p for p in pairs if p.messages[-1]["content"] == "Explain the moon landing.")
    assert first.system == "Answer briefly." and first.chosen == "People flew to the moon in 1969."
    assert first.rejected == "The moon is made of cheese." and first.margin == 1.0
    swapped = next(p for p in pairs if p.messages[-1]["content"] == "달은 무엇인가요?")
    assert swapped.chosen == "달은 지구의 위성입니다."  # the winner's answer, whichever side it was shown on
    multi = next(p for p in pairs if p.messages[-1]["content"] == "Continue the story.")
    assert len(multi.messages) == 3  # the earlier turns come along
    listed = {s.name: s for s in preference_pairs.list_sets(settings)}
    assert listed["votes"].pairs == 5


def test_only_ties_is_a_clear_message(settings):
    Store(settings.ratings_db).insert_many([r for r in sample_records() if r.winner == "tie"])
    with pytest.raises(PreferenceDataError, match="no chosen/rejected pair yet"):
        load_pairs("votes", settings)


def test_files_and_unknown_names(settings, tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}])
    assert [p.chosen for p in load_pairs(str(path), settings)] == ["Hello."]
    with pytest.raises(PreferenceDataError, match="No preference data 'nope'"):
        load_pairs("nope", settings)


def test_uploads_are_checked_whole_and_saved_under_a_safe_name(settings, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [
        {"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."},
        {"prompt": "Hi?", "chosen": "Hello."},
        {"prompt": "", "chosen": "a", "rejected": "b"},
    ])
    with pytest.raises(PreferenceDataError) as refused:
        preference_pairs.save_upload(bad, settings)
    message = str(refused.value)
    assert "Nothing was imported" in message and "line 2" in message and "rejected" in message
    assert "line 3" in message and "prompt" in message
    assert not preference_pairs.folder(settings).exists() or not any(preference_pairs.folder(settings).iterdir())
    (tmp_path / "broken.csv").write_text("prompt,chosen\nhi,hello\n")
    with pytest.raises(PreferenceDataError, match="rejected"):
        preference_pairs.save_upload(tmp_path / "broken.csv", settings)

    good = write_jsonl(tmp_path / "good.jsonl", [{"prompt": f"Q{i}?", "chosen": "yes", "rejected": "no"}
                                                 for i in range(3)])
    saved = preference_pairs.save_upload(good, settings, name="../../votes").saved
    assert saved.pairs == 3 and saved.path.parent == preference_pairs.folder(settings)
    assert saved.name not in ("votes", "preferences") and "/" not in saved.name
    assert len(load_pairs(saved.name, settings)) == 3
    other = write_jsonl(tmp_path / "other.jsonl", [{"prompt": "Q?", "chosen": "yes", "rejected": "no"}])
    again = preference_pairs.save_upload(other, settings, name=saved.name).saved
    assert again.name == f"{saved.name}-2"
    assert {s.name for s in preference_pairs.list_sets(settings)} >= {saved.name, again.name, "votes"}


def test_an_upload_with_repeated_rows_is_saved_and_says_how_many_were_skipped(settings, tmp_path):
    rows = [{"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."},
            {"prompt": "Bye?", "chosen": "Bye.", "rejected": "Whatever."}]
    path = write_jsonl(tmp_path / "twice.jsonl", rows + rows + rows[:1])
    upload = preference_pairs.save_upload(path, settings)
    assert upload.saved is not None and (upload.pairs, upload.repeated) == (2, 3)
    assert upload.summary() == ("Saved **twice**: 2 pairs (3 repeated rows skipped), now usable for reward-model "
                                "and DPO runs.")
    assert len(load_pairs("twice", settings)) == 2
    assert {s.name: s.pairs for s in preference_pairs.list_sets(settings)}["twice"] == 2


def test_uploading_the_same_pairs_again_adds_nothing_and_says_so(settings, tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}] * 2)
    first = preference_pairs.save_upload(path, settings)
    assert first.summary().startswith("Saved **mine**: 1 pair (1 repeated row skipped)")
    again = preference_pairs.save_upload(path, settings, name="copy")
    assert again.saved is None and again.held_by == ("mine",)
    assert again.summary() == "Nothing new was saved: the pair in mine.jsonl (1 repeated row skipped) is already in " \
                              "**mine**."
    assert [p.name for p in preference_pairs.folder(settings).iterdir()] == ["mine.jsonl"]
    as_csv = tmp_path / "mine.csv"  # the same pair in another format, spread with a bundled one: still nothing new
    bundled = json.loads(preference_pairs.BUNDLED["preferences"].read_text().splitlines()[0])
    as_csv.write_text("prompt,chosen,rejected\nHi?,Hello.,Go away.\n")
    assert preference_pairs.save_upload(as_csv, settings).saved is None
    both = write_jsonl(tmp_path / "both.jsonl", [{"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."},
                                                 bundled])
    upload = preference_pairs.save_upload(both, settings)
    assert upload.saved is None and set(upload.held_by) == {"mine", "preferences"}
    assert upload.summary() == "Nothing new was saved: all 2 pairs in both.jsonl are already in **preferences**, " \
                               "**mine**."


def test_a_pair_whose_chosen_equals_its_rejected_is_refused_naming_the_row(settings, tmp_path):
    path = write_jsonl(tmp_path / "same.jsonl", [{"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."},
                                                 {"prompt": "Q?", "chosen": "A.", "rejected": " A. "}])
    with pytest.raises(PreferenceDataError, match=r"line 2, field 'rejected': is the same answer as 'chosen'"):
        preference_pairs.save_upload(path, settings)
    with pytest.raises(PreferenceDataError, match="carries no preference"):
        load_pairs(str(path), settings)
    assert not preference_pairs.folder(settings).exists()


def test_split_is_seeded_and_holds_some_out(settings, tmp_path):
    pairs = [preference_pairs.Pair(id=str(i), messages=[{"role": "user", "content": str(i)}], system="",
                                  chosen="a", rejected="b") for i in range(20)]
    train, held = split(pairs, 0.1, seed=3)
    assert len(held) == 2 and len(train) == 18 and not {p.id for p in train} & {p.id for p in held}
    assert split(pairs, 0.1, seed=3) == (train, held) and split(pairs, 0.1, seed=4) != (train, held)
    assert len(split(pairs[:3], 0.1, seed=0)[1]) == 1  # a fraction > 0 always holds at least one pair out
    assert split(pairs, 0.0, seed=0)[1] == []


def test_a_run_keeps_its_split_when_resumed(settings, tmp_path):
    source = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"Q{i}?", "chosen": "yes", "rejected": "no"}
                                                for i in range(10)])
    cfg = RewardConfig(datasets=[str(source)], eval_fraction=0.2, data_dir=str(settings.data_dir))
    train, held = run_pairs(cfg, settings, tmp_path / "run" / "data", resume=False)
    assert len(train) == 8 and len(held) == 2
    source.write_text("")  # the source changes or disappears: a resumed run still has its own copy
    assert run_pairs(cfg, settings, tmp_path / "run" / "data", resume=True) == (train, held)
    limited = RewardConfig(datasets=[str(tmp_path / "run" / "data" / "train.jsonl")], max_examples=4,
                           eval_fraction=0.25, data_dir=str(settings.data_dir))
    train, held = run_pairs(limited, settings, tmp_path / "other", resume=False)  # the snapshot is preference data
    assert len(train) + len(held) == 4


def test_encoding_is_prompt_then_answer_then_eos_and_fits():
    tokenizer = build_tokenizer()
    messages = [{"role": "user", "content": "Tell me a story."}]
    prompt = encode_prompt(tokenizer, messages, "", "instruction")
    answer = encode_answer(tokenizer, " Once upon a time. ")
    assert prompt[0] == tokenizer.bos_token_id and answer[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(prompt, skip_special_tokens=True) == "### Instruction:\nTell me a story.\n\n### Response:\n"
    assert tokenizer.decode(answer, skip_special_tokens=True) == "Once upon a time."
    assert encode(tokenizer, messages, "", " Once upon a time. ", "instruction", 256) == prompt + answer
    # Too long: the answer keeps at most 3/4 of the room, the prompt its first (BOS) and last tokens.
    long_prompt, long_answer = list(range(100)), list(range(1000, 1100))
    cut_prompt, cut_answer = fit(long_prompt, long_answer, 64)
    assert len(cut_prompt) + len(cut_answer) == 64 and cut_answer == long_answer[:48]
    assert cut_prompt[0] == 0 and cut_prompt[1:] == long_prompt[-15:]
    assert fit([1, 2], [3, 4], 64) == ([1, 2], [3, 4])


def test_a_file_read_straight_into_pairs_gives_the_pairs_its_import_and_export_would(tmp_path):
    """The straight path (file rows → pairs) and the long one (file → comparison records → export rows → pairs)
    agree on every field, for the bundled pairs and for rows with a system prompt, a strength, a margin, an HH
    transcript and message lists."""
    from playground.ratings.importer import read_preferences

    rows = [
        {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away.", "strength": 4},
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
         "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}],
         "margin": 0.4, "id": "sum"},
        {"chosen": "\n\nHuman: Name a colour.\n\nAssistant: Blue.",
         "rejected": "\n\nHuman: Name a colour.\n\nAssistant: Seven."},
        {"prompt": "Answer.", "system": "You are kind.", "chosen": " Yes ", "rejected": "No"},
    ]
    for path in (write_jsonl(tmp_path / "mixed.jsonl", rows), preference_pairs.BUNDLED["preferences"]):
        straight = preference_pairs.load_pairs(str(path), None)
        via_records = preference_pairs.pairs_from_records(read_preferences(path).records)[0]
        assert straight == via_records and straight
    assert [p.margin for p in preference_pairs.load_pairs(str(tmp_path / "mixed.jsonl"), None)] == [0.8, 0.4, 0, 0]
