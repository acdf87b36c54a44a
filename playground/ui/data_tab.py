"""Data tab: the instruction datasets (bundled and uploaded), a preview with per-task counts, and checked uploads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from playground.core.files import write_failure
from playground.core.row_files import counted
from playground.core.settings import Settings
from playground.data import preference_pairs
from playground.data.instructions import (
    BUNDLED,
    EVALUATION_ONLY,
    DatasetError,
    DatasetInfo,
    list_datasets,
    load_examples,
    preview_table,
    resolve,
    save_upload,
    short,
    task_counts,
)
from playground.ui.rater import bind

INTRO = """
**Instruction tuning** is fine-tuning a pretrained model on many (instruction, answer) pairs spanning many different
tasks, so that it learns to follow instructions in general and does well on tasks it has never seen. These are the
datasets the SFT stage learns from: **instructions** is bundled ({families} task families); **heldout** holds other task
families, kept out of training and used only to measure that generalization. Upload your own as JSONL, JSON, CSV or
Parquet in one of four shapes: `prompt` + `completion`, `instruction` + `input` + `output` (Alpaca), `messages` (a
chat ending with the assistant's answer) or `text`; an optional `task` column is counted below. A file is checked
whole: any bad row is reported with its line or row, the field and the reason, and nothing is saved.
"""

COLUMNS = ["name", "shape", "rows", "source", "purpose"]


def intro() -> str:
    """The tab's introduction, with the bundled instructions' task families counted from the file (a count written
    by hand goes stale when the data changes)."""
    return INTRO.format(families=len(task_counts(load_examples(BUNDLED["instructions"]))))


PREVIEW_ROWS = 20


def datasets_table(infos: list[DatasetInfo]) -> pd.DataFrame:
    """The dataset list as the table shows it (held-out data is marked "evaluation only")."""
    rows = [(i.name, i.shape, i.rows, i.source, "evaluation only" if i.purpose == "evaluation" else i.purpose)
            for i in infos]
    return pd.DataFrame(rows, columns=COLUMNS)


def _empty_counts() -> pd.DataFrame:
    return pd.DataFrame({"task": pd.Series(dtype="object"), "examples": pd.Series(dtype="int64")})


def _summary(name: str, path: Path, count: int, tasks: int) -> str:
    use = ("**evaluation only**: tasks kept out of training, to measure generalization to unseen tasks"
           if name in EVALUATION_ONLY else "usable for SFT runs")
    return f"**{name}** · {count} examples · {tasks} task{'s' if tasks != 1 else ''} · {use} · `{path}`"


def refresh_list(settings: Settings, current: str | None) -> list[Any]:
    """The dataset table and the picker's choices (the /datasets endpoint), keeping the picked dataset (else the first
    one)."""
    listed = list_datasets(settings)
    known = [info.name for info in listed]
    value = current if current in known else (known[0] if known else None)
    return [datasets_table(listed), gr.update(choices=known, value=value)]


def show(settings: Settings, picked: str | None) -> list[Any]:
    """Summary, preview rows and per-task counts of a dataset (the /dataset_preview endpoint); a file that fails its
    check shows the report."""
    if not picked:
        return ["", preview_table([]), _empty_counts()]
    try:
        path = resolve(picked, settings)
        examples = load_examples(path)
    except DatasetError as error:
        return [str(error), preview_table([]), _empty_counts()]
    per_task = task_counts(examples)
    return [_summary(picked, path, len(examples), len(per_task)), preview_table(examples, PREVIEW_ROWS), per_task]


def save(settings: Settings, path: str | None, typed_name: str) -> list[Any]:
    """Check and keep an uploaded dataset file (the /dataset_upload endpoint): a note, then the refreshed list with the
    new dataset picked (on success)."""
    typed_name = (typed_name or "").strip()
    if not path:
        return ["", gr.skip(), gr.skip()]
    try:
        info = save_upload(Path(path), settings, typed_name or None)
    except DatasetError as error:
        return [f"**Nothing was saved.** {error}", gr.skip(), gr.skip()]
    except OSError as error:
        return [f"**Nothing was saved:** {write_failure(error, 'the datasets folder')}.", gr.skip(), gr.skip()]
    renamed = f" (The name {typed_name!r} was taken or unsafe, so it is called {info.name!r}.)" \
        if typed_name and info.name != typed_name else ""
    message = f"Saved **{info.name}**: {counted(info.rows, 'example')} ({info.shape}), now in the list above and usable " \
              f"for SFT runs.{renamed}"
    return [message] + refresh_list(settings, info.name)


def picked_row(frame: Any, event: gr.SelectData) -> Any:
    """The name in the clicked row of the dataset table, for the picker (a click outside the rows changes nothing)."""
    row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
    try:
        return frame.iloc[row]["name"]
    except (IndexError, KeyError, TypeError):
        return gr.skip()


def build(settings: Settings, tab: gr.Tab) -> None:
    """Lay out the Data tab and wire its events (layout first, events at the end)."""
    infos = list_datasets(settings)
    with gr.Accordion("What this tab shows", open=False):
        gr.Markdown(intro())
    table = gr.Dataframe(datasets_table(infos), interactive=False, wrap=False, max_height=300,
                         label="Datasets (click a row to preview it)")
    with gr.Row(equal_height=True):
        choice = gr.Dropdown([info.name for info in infos], value=None, label="Dataset", scale=3)
        refresh = gr.Button("Refresh", size="sm")
    summary = gr.Markdown("", elem_id="dataset-summary")
    with gr.Row():
        rows = gr.Dataframe(preview_table([]), interactive=False, wrap=True, max_height=480, scale=3,
                            label=f"First {PREVIEW_ROWS} examples (prompt = the last user turn; shortened)")
        counts = gr.BarPlot(_empty_counts(), x="task", y="examples", x_title="task family",
                            y_title="examples (count)", sort="-y", x_label_angle=-40, scale=2,
                            y_lim=[0, None],  # Gradio fits the axis to the data: equal counts drew no bars
                            label="Examples per task")
    with gr.Accordion("Upload a dataset", open=True):
        with gr.Row():
            with gr.Column():
                name = gr.Textbox(label="Name (optional; set it before choosing the file — default: the file name)",
                                  max_length=80)
                upload = gr.File(label="Dataset file", file_types=[".jsonl", ".json", ".csv", ".parquet"])
            note = gr.Markdown("", elem_id="dataset-upload-note")

    # ------------------------------------------------------------------------------------------ events

    view = [summary, rows, counts]
    show_picked, refresh_picked = bind(show, settings), bind(refresh_list, settings)
    choice.input(show_picked, choice, view, api_name="dataset_preview")
    refresh.click(refresh_picked, choice, [table, choice], api_name="datasets").then(
        show_picked, choice, view, api_visibility="private")
    tab.select(refresh_picked, choice, [table, choice], api_visibility="private").then(
        show_picked, choice, view, api_visibility="private")  # fresh every time the tab is opened
    table.select(picked_row, table, choice, api_visibility="private").then(
        show_picked, choice, view, api_visibility="private")
    upload.upload(bind(save, settings), [upload, name], [note, table, choice], api_name="dataset_upload").then(
        show_picked, choice, view, api_visibility="private")
    _preference_section(settings, tab)


# ---------------------------------------------------------------------------------------------- preference pairs

PREFERENCE_INTRO = """
**Preference pairs** — a prompt, a better answer and a worse one — are what the reward model and DPO learn from.
`votes` are your own (every comparison voted *Left/Right is better*; ties and both-bad are left out); `preferences` is
bundled: {pairs} pairs written for this project whose rejected answer has a labelled flaw (wrong, ignores the
instruction, off topic, rambling, rude, unsafe, incomplete, repetitive). Upload JSONL, JSON, CSV or Parquet with
`prompt`, `chosen`, `rejected` (text or chat messages) or HH-RLHF transcripts; a file with any bad row (a chosen answer
equal to its rejected one included) is refused with a per-row report and nothing is saved; repeated rows are skipped,
and a file whose pairs are all here already adds nothing.
"""


def preference_intro() -> str:
    """The preference section's introduction, with the bundled pairs counted from the file."""
    bundled = sum(s.pairs for s in preference_pairs.list_sets(None) if s.origin == "bundled")
    return PREFERENCE_INTRO.format(pairs=bundled)


def preference_table(settings: Settings) -> pd.DataFrame:
    """The preference sources (bundled, votes, uploaded) as the section's table lists them."""
    sets = preference_pairs.list_sets(settings)
    return pd.DataFrame([(s.name, s.pairs, s.origin) for s in sets],
                        columns=["name", "pairs", "source"])


def preference_preview(settings: Settings, choice: str | None) -> list[Any]:
    """A summary line and the first rows of the preference source ``choice`` (or why it can't be read); the
    /preference_preview endpoint."""
    empty = pd.DataFrame(columns=["prompt", "chosen", "rejected", "margin"])
    if not choice:
        return ["", empty]
    try:
        pairs = preference_pairs.load_pairs(choice, settings)
    except preference_pairs.PreferenceDataError as error:
        return [str(error), empty]
    rows = [(short(p.messages[-1]["content"]), short(p.chosen), short(p.rejected), p.margin)
            for p in pairs[:PREVIEW_ROWS]]
    return [f"**{choice}** · {counted(len(pairs), 'pair')} · usable for reward-model and DPO runs",
            pd.DataFrame(rows, columns=list(empty.columns))]


def save_preferences(settings: Settings, path: str | None, typed: str) -> list[Any]:
    """Check and keep an uploaded preference file under the ``typed`` name (the /preference_upload endpoint): a note
    (per-row problems when refused) and the new list."""
    if not path:
        return ["", gr.skip(), gr.skip()]
    try:
        saved = preference_pairs.save_upload(Path(path), settings, (typed or "").strip() or None)
    except preference_pairs.PreferenceDataError as error:
        return [f"**Nothing was saved.** {error}", gr.skip(), gr.skip()]
    except OSError as error:
        return [f"**Nothing was saved:** {write_failure(error, 'the datasets folder')}.", gr.skip(), gr.skip()]
    if saved.saved is None:
        return [saved.summary(), gr.skip(), gr.skip()]
    names = [s.name for s in preference_pairs.list_sets(settings)]
    return [saved.summary(), preference_table(settings), gr.update(choices=names, value=saved.saved.name)]


def preference_lists(settings: Settings) -> list[Any]:
    """The preference table and the preview's choices as they are now (run when the tab opens: votes and uploads
    made since show up)."""
    return [preference_table(settings), gr.update(choices=[s.name for s in preference_pairs.list_sets(settings)])]


def _preference_section(settings: Settings, tab: gr.Tab) -> None:
    """Lay out the preference-pairs section and wire its events (layout first, events at the end)."""
    with gr.Accordion("Preference pairs (reward model, DPO)", open=False):
        gr.Markdown(preference_intro())
        listing = gr.Dataframe(preference_table(settings), interactive=False, label="Preference data")
        picked = gr.Dropdown([s.name for s in preference_pairs.list_sets(settings)], value=None,
                             label="Preview")
        summary = gr.Markdown("")
        rows = gr.Dataframe(interactive=False, wrap=True, max_height=420, label=f"First {PREVIEW_ROWS} pairs")
        with gr.Row():
            with gr.Column():
                name = gr.Textbox(label="Name (optional; set it before choosing the file)", max_length=80)
                upload = gr.File(label="Preference file", file_types=[".jsonl", ".json", ".csv", ".parquet"])
            note = gr.Markdown("", elem_id="preference-upload-note")

    preview = bind(preference_preview, settings)
    picked.input(preview, picked, [summary, rows], api_name="preference_preview")
    upload.upload(bind(save_preferences, settings), [upload, name], [note, listing, picked],
                  api_name="preference_upload").then(preview, picked, [summary, rows], api_visibility="private")
    tab.select(bind(preference_lists, settings), None, [listing, picked], api_visibility="private")
