"""The chat screen: conversation on the left, the reasoning tree growing on the right.

The search runs in a thread worker (`exclusive=True`, so a new question cancels an old
search); the worker batches events by time and posts them as `SearchProgressed` messages, the
screen applies them to its `SearchTree` and redraws only the changed nodes. Esc cancels
(cooperatively: the worker checks between events). Each finished, cancelled or failed
question is appended to the history file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Input, Tree
from textual.worker import get_current_worker

from caspo_lite.answer_confidence import AnswerConfidence, confidence_from_events
from caspo_lite.errors import CaspoError
from caspo_lite.search.events import AnswerChosen, SearchEvent
from caspo_lite.search.tree import ROOT, SearchTree
from caspo_lite.tui.history import Turn, append_turn, export_tree
from caspo_lite.tui.inference import EventBatcher, prepare
from caspo_lite.tui.messages import ModelChosen, SearchEnded, SearchProgressed, SearchStarted
from caspo_lite.tui.screens.base import CaspoScreen
from caspo_lite.tui.screens.history import HistoryScreen
from caspo_lite.tui.screens.settings import SettingsScreen
from caspo_lite.tui.settings import ChatSettings
from caspo_lite.tui.widgets.conversation import ConversationView, answer_markdown
from caspo_lite.tui.widgets.reasoning_tree import ReasoningTree
from caspo_lite.tui.widgets.status_bar import SearchStatus, StatusBar
from caspo_lite.tui.widgets.token_view import TokenView

log = logging.getLogger(__name__)


def model_label(ref: str) -> str:
    return Path(ref).name if ref.endswith(".gguf") else ref


def shown_answer_confidence(
    settings: ChatSettings, events: list[SearchEvent], chosen: AnswerChosen
) -> AnswerConfidence:
    """What the answer card shows: P(correct) where the model is calibrated, else "uncalibrated"."""
    return confidence_from_events(settings.model, events, chosen, settings.abstain_below)


class ChatScreen(CaspoScreen):
    # Esc cancels a running search and otherwise goes home: `check_action` shows the one that
    # applies in the footer (the other stays hidden) and the key falls through to it.
    BINDINGS = [
        Binding("escape", "cancel", "Cancel search"),
        Binding("escape", "home", "Home"),
        Binding("f2", "settings", "Settings"),
        Binding("f3", "history", "History"),
        Binding("f4", "export", "Export tree"),
        Binding("f5", "new_chat", "New chat"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.tree_model = SearchTree()
        self.events: list[SearchEvent] = []
        self.run_id = 0
        self.state = "idle"
        self.conversation_id: str | None = None
        self.run_settings: ChatSettings | None = None  # the settings the shown search ran with
        self.current_turn: Turn | None = None
        self._t0 = 0.0
        self._t1: float | None = None

    # -- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-body"):
            with Vertical(id="chat-left"):
                yield ConversationView(id="conversation")
                yield Input(placeholder="Ask a question (Enter). F2 settings · F3 history", id="question")
            with Vertical(id="chat-right"):
                yield ReasoningTree(id="reasoning")
                with VerticalScroll(id="token-scroll"):
                    yield TokenView(id="tokens")
        yield StatusBar(self._status(), id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#question", Input).focus()
        self.set_interval(0.5, self._tick)

    @property
    def tree_widget(self) -> ReasoningTree:
        return self.query_one("#reasoning", ReasoningTree)

    @property
    def conversation(self) -> ConversationView:
        return self.query_one("#conversation", ConversationView)

    @property
    def token_view(self) -> TokenView:
        return self.query_one("#tokens", TokenView)

    @property
    def status_bar(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    @property
    def busy(self) -> bool:
        return self.state in ("loading", "searching", "cancelling")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return self.state in ("loading", "searching")
        if action == "home":
            return not self.busy
        return True

    def _set_state(self, state: str) -> None:
        """Change the search state and redraw the footer (Esc's meaning follows it)."""
        self.state = state
        self.refresh_bindings()

    # -- status ----------------------------------------------------------------------------------

    def _status(self) -> SearchStatus:
        settings = self.run_settings or self.caspo.settings
        end = self._t1 if self._t1 is not None else self.caspo.clock()
        return SearchStatus(
            model=model_label(settings.model),
            strategy=settings.search.strategy,
            state=self.state,
            live=self.tree_model.n_live(),
            tokens=self.tree_model.n_tokens,
            budget=settings.token_budget(),
            saved_vs_sc=self._saved_vs_sc(settings),
            k=settings.search.k,
            elapsed_s=max(0.0, end - self._t0) if self.state != "idle" else 0.0,
            counters=self.tree_model.counter_line(),
        )

    def _saved_vs_sc(self, settings: ChatSettings) -> int | None:
        """Tokens saved against self-consistency at the same K, once the search is done.

        None while it runs (the estimate moves as paths finish, so a running figure jumps), and
        for sc itself (it would compare the search with itself).
        """
        if self.state != "done" or settings.search.strategy == "sc":
            return None
        return self.tree_model.tokens_saved_vs_sc(settings.search.k)

    def on_model_chosen(self, message: ModelChosen) -> None:
        """The app's settings name another model (`CaspoApp.chat_with`): show it while idle."""
        if not self.busy:
            self.run_settings = None
            self.refresh_status()

    def refresh_status(self) -> None:
        self.status_bar.show(self._status())

    def _tick(self) -> None:
        if self.busy:
            self.refresh_status()

    # -- asking ----------------------------------------------------------------------------------

    @on(Input.Submitted, "#question")
    def _submitted(self, event: Input.Submitted) -> None:
        question = event.value.strip()
        if not question:
            return
        if self.busy:
            self.notify("A search is running; Esc cancels it.", severity="warning")
            return
        event.input.value = ""
        self.ask(question)

    def ask(self, question: str) -> None:
        """Start a search for ``question`` with a copy of the app's current settings."""
        settings = self.caspo.settings.copy()
        self.run_id += 1
        self.run_settings = settings
        self.events = []
        self.tree_model = SearchTree(question)
        self._set_state("loading")
        self._t0, self._t1 = self.caspo.clock(), None
        if self.conversation_id is None:
            self.conversation_id = Turn(question, {}, []).conversation
        self.conversation.add_question(question)
        self.tree_widget.show(self.tree_model, settings.confidence.signal)
        self.token_view.show_node(self.tree_model, None)
        self.refresh_status()
        self._search(self.run_id, question, settings)

    @work(thread=True, exclusive=True, group="search")
    def _search(self, run_id: int, question: str, settings: ChatSettings) -> None:
        """Runs in a thread: pull events, batch them by time, post them to the screen."""
        worker = get_current_worker()
        batcher = EventBatcher(self.caspo.batch_interval_s)
        stream = None
        try:
            prepare(self.caspo.source, settings)  # loading a model is not search time
            if worker.is_cancelled:
                self.post_message(SearchEnded(run_id, cancelled=True))
                return
            self.post_message(SearchStarted(run_id))
            stream = self.caspo.source.events(question, settings)
            for event in stream:
                batch = batcher.push(event)
                if batch:
                    self.post_message(SearchProgressed(run_id, batch))
                if worker.is_cancelled:
                    break
            tail = batcher.flush()
            if tail:
                self.post_message(SearchProgressed(run_id, tail))
            self.post_message(SearchEnded(run_id, cancelled=worker.is_cancelled))
        except CaspoError as exc:
            self.post_message(SearchEnded(run_id, error=str(exc)))
        except Exception as exc:  # a bug in a strategy must not take the UI down; log it whole
            log.exception("search failed")
            self.post_message(SearchEnded(run_id, error=f"{type(exc).__name__}: {exc}"))
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # a generator's finally frees the engine session

    # -- events from the worker ------------------------------------------------------------------

    def on_search_started(self, message: SearchStarted) -> None:
        if message.run_id != self.run_id or self.state != "loading":
            return
        self._set_state("searching")
        self._t0 = self.caspo.clock()
        self.refresh_status()

    def on_search_progressed(self, message: SearchProgressed) -> None:
        if message.run_id != self.run_id:
            return  # a stale batch from a search that was replaced
        self.apply_events(message.events)

    def apply_events(self, events: list[SearchEvent]) -> None:
        """Apply a batch to the model and redraw what changed (also used by replay and tests)."""
        self.events.extend(events)
        self.tree_model.apply_all(events)
        self.tree_widget.sync()
        for event in events:
            if isinstance(event, AnswerChosen):
                self._answer_landed(event)
        view = self.token_view
        if view.node_id is not None:
            view.show_node(self.tree_model, view.node_id, self.tree_widget.signal)
        self.refresh_status()

    def _answer_landed(self, event: AnswerChosen) -> None:
        markdown = answer_markdown(
            self.tree_model.winning_text(),
            event.answer,
            event.confidence,
            event.strategy,
            shown_answer_confidence(self.run_settings or self.caspo.settings, self.events, event),
        )
        self.conversation.add_answer(markdown)
        if event.branch is not None and event.branch in self.tree_model.branches:
            tip_id = self.tree_model.branch_tip(event.branch)
            self.token_view.show_node(self.tree_model, tip_id, self.tree_widget.signal)
            tip = self.tree_widget.tree_node(tip_id)
            if tip is not None:  # after the redraw, when the new lines have positions
                self.tree_widget.call_after_refresh(self.tree_widget.move_cursor, tip)

    def on_search_ended(self, message: SearchEnded) -> None:
        if message.run_id != self.run_id:
            return
        self._t1 = self.caspo.clock()
        self.tree_model.end(cancelled=message.cancelled and not message.error)
        self.tree_widget.sync()  # what was being written stops looking "live"
        view = self.token_view
        if view.node_id is not None:
            view.show_node(self.tree_model, view.node_id, self.tree_widget.signal)
        if message.error:
            self._set_state("error")
            self.conversation.add_note(f"Search failed: {message.error}", "error")
            self.notify(message.error, title="Search failed", severity="error")
        elif message.cancelled:
            self._set_state("cancelled")
            self.conversation.add_note("Search cancelled.", "cancelled")
        else:
            self._set_state("done")
            if self.tree_model.answer is None:
                self.conversation.add_note("The search ended without an answer.", "warning")
        self.refresh_status()
        self._save_turn(message.cancelled, message.error)

    def _save_turn(self, cancelled: bool, error: str | None) -> None:
        settings = self.run_settings or self.caspo.settings
        turn = Turn(
            question=self.tree_model.question,
            settings=settings.to_dict(),
            events=list(self.events),
            conversation=self.conversation_id or Turn("", {}, []).conversation,
            created=self.caspo.wall_clock(),
            cancelled=cancelled,
            error=error,
        )
        self.current_turn = turn
        try:
            append_turn(turn, self.caspo.history_file)
        except OSError as exc:
            self.notify(f"could not save the history: {exc}", severity="warning")

    # -- actions ---------------------------------------------------------------------------------

    def action_cancel(self) -> None:
        if self.state not in ("loading", "searching"):
            return
        self._set_state("cancelling")
        self.workers.cancel_group(self, "search")
        self.refresh_status()

    def action_home(self) -> None:
        self.app.switch_mode("home")

    def action_settings(self) -> None:
        def applied(new: ChatSettings | None) -> None:
            if new is not None:
                self.caspo.remember_settings(new)
                self.notify("Settings apply to the next question.")
                if not self.busy:
                    self.run_settings = None
                    self.refresh_status()

        self.app.push_screen(SettingsScreen(self.caspo.settings), applied)

    def action_history(self) -> None:
        def chosen(turns: list[Turn] | None) -> None:
            if turns:
                self.load_conversation(turns)

        self.app.push_screen(HistoryScreen(self.caspo.history_file), chosen)

    def action_export(self) -> None:
        if self.tree_model.question == "" or self.busy:
            self.notify("Nothing to export yet (ask a question, or wait for it to finish).")
            return
        stem = f"{self.conversation_id or 'chat'}-{len(self.events)}"
        try:
            json_path, md_path = export_tree(self.tree_model, stem, self.caspo.export_dir)
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error")
            return
        self.notify(f"Tree saved as {json_path} and {md_path.name}", timeout=8)

    def action_new_chat(self) -> None:
        if self.busy:
            self.notify("A search is running; Esc cancels it.", severity="warning")
            return
        self.conversation_id = None
        self.conversation.clear_all()
        self.tree_model = SearchTree()
        self.events = []
        self._set_state("idle")
        self.tree_widget.show(self.tree_model)
        self.token_view.show_node(self.tree_model, None)
        self.refresh_status()

    def load_conversation(self, turns: list[Turn]) -> None:
        """Show a saved conversation; the tree of its last question is rebuilt from its events."""
        if self.busy:
            self.notify("A search is running; Esc cancels it.", severity="warning")
            return
        self.action_new_chat()
        self.conversation_id = turns[0].conversation
        for turn in turns:
            self.conversation.add_question(turn.question)
            tree = turn.tree()
            answer = turn.answer
            if answer is not None:
                shown = confidence_from_events(
                    turn.settings.get("model"), turn.events, answer, turn.settings.get("abstain_below")
                )
                self.conversation.add_answer(
                    answer_markdown(
                        tree.winning_text(), answer.answer, answer.confidence, answer.strategy, shown
                    )
                )
            elif turn.cancelled:
                self.conversation.add_note("Search cancelled.", "cancelled")
            elif turn.error:
                self.conversation.add_note(f"Search failed: {turn.error}", "error")
        last = turns[-1]
        self.current_turn = last
        self.tree_model = last.tree()
        self.events = list(last.events)
        signal = last.settings.get("confidence", {}).get("signal", "entropy")
        self.tree_widget.show(self.tree_model, signal)
        self._set_state("idle")
        self.refresh_status()

    # -- selection -------------------------------------------------------------------------------

    @on(Tree.NodeHighlighted, "#reasoning")
    @on(Tree.NodeSelected, "#reasoning")
    def _node_chosen(self, event: Tree.NodeHighlighted[int] | Tree.NodeSelected[int]) -> None:
        node_id = event.node.data if event.node.data is not None else ROOT
        self.token_view.show_node(self.tree_model, node_id, self.tree_widget.signal)
