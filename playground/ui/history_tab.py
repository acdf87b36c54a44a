"""History tab: every vote as a filterable table with a detail view and (undoable) delete; export and import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from playground.core.settings import Settings
from playground.ratings import history
from playground.ratings.export import export_all
from playground.ratings.importer import import_file
from playground.ratings.selection import RATER_KINDS, check_kind, select
from playground.ratings.store import Store, StoreError
from playground.ui.rater import bind, rater_name

INTRO = """
Every comparison you voted on, in Compare or Rate, with both answers and how they were made (model, adapter, prompt
format, sampling settings and seed). Filter, open one to read it whole, delete mistakes (Undo brings them back).
**Export** turns the votes into the pairwise preference data that reward-model and DPO training read
(prompt, chosen, rejected); **Import** brings in preference data from elsewhere.
"""


# ---------------------------------------------------------------------------------------------- callbacks
# Each takes the store (and what else it needs) first, then the event's inputs, by the names the API documents.


def refresh_view(store: Store, model_value: str, winner_value: str, rater_value: str, since_value: str,
                 until_value: str, raters_value: str = "humans") -> list[Any]:
    """The filtered table (the /history endpoint) and what goes with it: the model and rater choices, the "n of m" line
    and the votes per model pair (over every vote of the chosen kind of rater — people, AI judges or both — not only
    those shown). A date that isn't one is refused with a message."""
    try:
        chosen = history.Filters(model_value or "", winner_value or "", rater_value or "",
                                 (since_value or "").strip(), (until_value or "").strip(), raters_value or "humans")
    except ValueError as error:
        raise gr.Error(str(error)) from error
    records = select(store.comparisons(), chosen.raters, repeats=True)
    frame = history.table(records, chosen)
    return [
        gr.update(choices=[("any", "")] + history.model_options(records)),
        gr.update(choices=[("any", "")] + sorted({(r.rater or "—", r.rater) for r in records})),
        f"{len(frame)} of {len(records)} votes shown.",
        frame,
        history.pair_counts(records),
    ]


def open_row(store: Store, frame: Any, event: gr.SelectData) -> list[Any]:
    """A clicked row in the detail view: [selected id, detail HTML, Delete button] (Delete only for a live vote).
    A row that is gone (deleted elsewhere, or a click outside the rows) selects nothing."""
    row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
    try:
        comparison_id = frame.iloc[row]["id"]
    except (IndexError, KeyError, TypeError):
        return [None, "", gr.update(interactive=False)]
    record = store.get(comparison_id)
    if record is None:
        return [None, "This comparison no longer exists.", gr.update(interactive=False)]
    return [record.id, history.detail(record), gr.update(interactive=record.deleted_at is None)]


def delete_selected(store: Store, comparison_id: str | None, ids: list[str], *filter_values: str) -> list[Any]:
    """Delete the selected vote (the /history_delete endpoint; soft: Undo restores it) and remember it for Undo:
    [selected, detail, Delete, deleted ids, Undo] then the refreshed view. With nothing selected it is refused with a
    message."""
    if not comparison_id or not store.delete(comparison_id):
        raise gr.Error("Select a comparison in the table first.")
    gr.Info("Deleted. It no longer counts in the leaderboard or exports; Undo brings it back.")
    return [None, "", gr.update(interactive=False), ids + [comparison_id], gr.update(interactive=True)] + \
        refresh_view(store, *filter_values)


def undo_delete(store: Store, ids: list[str], *filter_values: str) -> list[Any]:
    """Restore the vote deleted last in this session (the /history_undo endpoint): [the ids still to undo, Undo] then
    the refreshed view."""
    if not ids:
        raise gr.Error("Nothing to undo.")
    store.restore(ids[-1])
    gr.Info("Restored.")
    return [ids[:-1], gr.update(interactive=len(ids) > 1)] + refresh_view(store, *filter_values)


def run_export(store: Store, exports_dir: Path, raters_value: str = "humans",
               progress: gr.Progress = gr.Progress()) -> list[Any]:  # noqa: B008 - Gradio's idiom
    """Export every vote of the chosen kind of rater (people's, AI judges' or both) as training data into a new folder
    under ``exports_dir`` (the /export endpoint): [the summary, the zip to download (shown only when one was
    written)]. A failure is reported and writes nothing."""
    try:
        report = export_all(store, exports_dir, progress=progress, raters=check_kind(raters_value or "humans"))
    except (OSError, StoreError, ValueError) as error:
        raise gr.Error(f"Export failed, nothing was written: {error}") from error
    archive = report.zip_path
    return [report.summary(), gr.update(value=str(archive) if archive else None, visible=bool(archive))]


def run_import(store: Store, path: str | None, typed_rater: str, request: gr.Request) -> str:
    """Import an uploaded preference file (the /import endpoint) under the rater's name (the login when there is one);
    the summary says what was imported, or which rows are wrong (then nothing is)."""
    if not path:
        return ""
    result = import_file(store, path, rater=rater_name(typed_rater, request))
    return result.summary()


def build(settings: Settings, store: Store, rater: gr.Textbox, tab: gr.Tab) -> None:
    """Lay out the History tab and wire its events (layout first, events at the end)."""
    selected = gr.State(None)  # id of the comparison in the detail view
    deleted = gr.State([])  # ids this session deleted, newest last (for Undo)

    with gr.Accordion("What this tab shows", open=False):
        gr.Markdown(INTRO)
    with gr.Row():
        model = gr.Dropdown([("any", "")], value="", label="Model", scale=2)
        winner = gr.Dropdown([("any", "")] + [(v, k) for k, v in history.WINNER_LABELS.items()], value="",
                             label="Winner")
        rater_filter = gr.Dropdown([("any", "")], value="", label="Rater")
        kinds = gr.Dropdown([(label, kind) for kind, label in RATER_KINDS.items()], value="humans",
                            label="Votes from")
        since = gr.Textbox(label="From (YYYY-MM-DD)", max_length=10)
        until = gr.Textbox(label="To (YYYY-MM-DD)", max_length=10)
        refresh = gr.Button("Refresh", size="sm")
    count = gr.Markdown("")
    table = gr.Dataframe(history.table([]), interactive=False, wrap=False, max_height=360,
                         label="Comparisons (newest first; click a row for details)")
    with gr.Row():
        delete = gr.Button("Delete selected", variant="stop", size="sm", interactive=False)
        undo = gr.Button("Undo delete", size="sm", interactive=False)
    detail = gr.HTML("", elem_id="history-detail")  # HTML with model text verbatim: see playground.core.verbatim
    with gr.Accordion("Votes per model pair", open=False):
        pairs = gr.Dataframe(history.pair_counts([]), interactive=False)
    with gr.Accordion("Export for training", open=False):
        gr.Markdown("Writes TRL preference data (standard and conversational), KTO unpaired data and FastChat-style "
                    "battles as JSONL, Parquet and `datasets` folders into a new folder under "
                    f"`{settings.exports_dir}`, and a zip to download. Ties and both-bad votes can't be "
                    "chosen/rejected pairs; the summary says how many were left out. A pair asked again to "
                    "measure consistency is exported once.")
        export_kinds = gr.Radio([(label, kind) for kind, label in RATER_KINDS.items()], value="humans",
                                label="Votes from")
        export = gr.Button("Export votes")
        export_note = gr.Markdown("")
        download = gr.File(label="Download", visible=False)
    with gr.Accordion("Import preference data", open=False):
        gr.Markdown("JSONL, CSV or Parquet with `prompt`, `chosen`, `rejected` columns (text or chat messages), or "
                    "HH-RLHF style `chosen`/`rejected` transcripts. A file is imported whole or not at all: any bad "
                    "row is reported with its row number and nothing is written.")
        upload = gr.File(label="Preference file", file_types=[".jsonl", ".json", ".csv", ".parquet"])
        import_note = gr.Markdown("")

    # ------------------------------------------------------------------------------------------ events

    filters = [model, winner, rater_filter, since, until, kinds]
    view = [model, rater_filter, count, table, pairs]
    show = bind(refresh_view, store)
    refresh.click(show, filters, view, api_name="history")
    for box in filters:
        (box.submit if isinstance(box, gr.Textbox) else box.input)(show, filters, view, api_visibility="private")
    tab.select(show, filters, view, api_visibility="private")  # fresh every time the tab is opened
    table.select(bind(open_row, store), table, [selected, detail, delete], api_visibility="private")
    delete.click(bind(delete_selected, store), [selected, deleted] + filters,
                 [selected, detail, delete, deleted, undo] + view, api_name="history_delete")
    undo.click(bind(undo_delete, store), [deleted] + filters, [deleted, undo] + view, api_name="history_undo")
    export.click(bind(run_export, store, settings.exports_dir), export_kinds, [export_note, download],
                 api_name="export")
    upload.upload(bind(run_import, store), [upload, rater], import_note, api_name="import")
