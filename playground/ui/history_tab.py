"""History tab: every vote as a filterable table with a detail view and (undoable) delete; export and import."""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.core.settings import Settings
from playground.ratings import history
from playground.ratings.export import export_all
from playground.ratings.importer import import_file
from playground.ratings.store import Store, StoreError
from playground.ui.rater import rater_name

INTRO = """
Every comparison you voted on, in Compare or Rate, with both answers and how they were made (model, adapter, prompt
format, sampling settings and seed). Filter, open one to read it whole, delete mistakes (Undo brings them back).
**Export** turns the votes into the pairwise preference data that reward-model and DPO training read
(prompt, chosen, rejected); **Import** brings in preference data from elsewhere.
"""


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
                    "chosen/rejected pairs; the summary says how many were left out.")
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

    filters = [model, winner, rater_filter, since, until]

    def refresh_view(model_value: str, winner_value: str, rater_value: str, since_value: str,
                     until_value: str) -> list[Any]:
        try:
            chosen = history.Filters(model_value or "", winner_value or "", rater_value or "",
                                     (since_value or "").strip(), (until_value or "").strip())
        except ValueError as error:
            raise gr.Error(str(error)) from error
        records = store.comparisons()
        frame = history.table(records, chosen)
        return [
            gr.update(choices=[("any", "")] + history.model_options(records)),
            gr.update(choices=[("any", "")] + sorted({(r.rater or "—", r.rater) for r in records})),
            f"{len(frame)} of {len(records)} votes shown.",
            frame,
            history.pair_counts(records),
        ]

    view = [model, rater_filter, count, table, pairs]
    refresh.click(refresh_view, filters, view, api_name="history")
    for box in filters:
        (box.submit if isinstance(box, gr.Textbox) else box.input)(refresh_view, filters, view,
                                                                   api_visibility="private")
    tab.select(refresh_view, filters, view, api_visibility="private")  # fresh every time the tab is opened

    def open_row(frame: Any, event: gr.SelectData) -> list[Any]:
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        try:
            comparison_id = frame.iloc[row]["id"]
        except (IndexError, KeyError, TypeError):
            return [None, "", gr.update(interactive=False)]
        record = store.get(comparison_id)
        if record is None:
            return [None, "This comparison no longer exists.", gr.update(interactive=False)]
        return [record.id, history.detail(record), gr.update(interactive=record.deleted_at is None)]

    table.select(open_row, table, [selected, detail, delete], api_visibility="private")

    def delete_selected(comparison_id: str | None, ids: list[str], *filter_values: str) -> list[Any]:
        if not comparison_id or not store.delete(comparison_id):
            raise gr.Error("Select a comparison in the table first.")
        gr.Info("Deleted. It no longer counts in the leaderboard or exports; Undo brings it back.")
        return [None, "", gr.update(interactive=False), ids + [comparison_id], gr.update(interactive=True)] + \
            refresh_view(*filter_values)

    delete.click(delete_selected, [selected, deleted] + filters, [selected, detail, delete, deleted, undo] + view,
                 api_name="history_delete")

    def undo_delete(ids: list[str], *filter_values: str) -> list[Any]:
        if not ids:
            raise gr.Error("Nothing to undo.")
        store.restore(ids[-1])
        gr.Info("Restored.")
        return [ids[:-1], gr.update(interactive=len(ids) > 1)] + refresh_view(*filter_values)

    undo.click(undo_delete, [deleted] + filters, [deleted, undo] + view, api_name="history_undo")

    def run_export(progress: gr.Progress = gr.Progress()) -> list[Any]:  # noqa: B008 - Gradio's idiom
        try:
            report = export_all(store, settings.exports_dir, progress=progress)
        except (OSError, StoreError, ValueError) as error:
            raise gr.Error(f"Export failed, nothing was written: {error}") from error
        archive = report.zip_path
        return [report.summary(), gr.update(value=str(archive) if archive else None, visible=bool(archive))]

    export.click(run_export, None, [export_note, download], api_name="export")

    def run_import(path: str | None, typed_rater: str, request: gr.Request) -> str:
        if not path:
            return ""
        result = import_file(store, path, rater=rater_name(typed_rater, request))
        return result.summary()

    upload.upload(run_import, [upload, rater], import_note, api_name="import")
