"""Stale questions, drawn by the Question sets and Coverage pages (not a page itself).

A question is flagged "review: the policy changed" when a new version of a document changed or
removed the passage its expected answer rests on. Each flagged question shows the old passage
(as it was linked) beside the new one (the current text of the same section, or "section
removed"); the analyst clears it by editing the expected answer (and saving the set) or with
"Confirm expected answer" (the expected answer still holds: re-link to the current passage).
"""

from __future__ import annotations

import streamlit as st

from pages import _shared as ui
from rag_core.errors import RagError

#: The flag's wording, everywhere it is shown.
FLAG = "review: the policy changed"


def _confirm(set_name: str, number: int, flash_key: str) -> None:
    try:
        cleared = ui.workspace().confirm_question(set_name, number)
    except RagError as exc:
        st.session_state[flash_key] = ("error", ui.md(str(exc)))
        return
    st.session_state[flash_key] = (
        "success",
        f"Q{number}: expected answer confirmed — {cleared} passage{'s' if cleared != 1 else ''} "
        "re-linked to the current policy.",
    )


def render(set_name: str, *, key: str, flash_key: str, edit_hint: bool = True) -> int:
    """The stale questions of ``set_name`` in an expander (nothing when none); returns how many.
    ``key`` prefixes widget keys (one page may not draw it twice with the same key)."""
    try:
        stale = ui.workspace().stale_questions(set_name)
    except RagError as exc:
        st.error(ui.md(str(exc)))
        return 0
    if not stale:
        return 0
    with st.expander(
        f"{len(stale)} question{'s' if len(stale) != 1 else ''} to {FLAG}",
        expanded=True,
        icon=":material/warning:",
    ):
        st.caption(
            "A new version of a document changed or removed the passage these expected answers rest "
            "on. Edit the expected answer"
            + (" in the table above and Save" if edit_hint else " on the Question sets page")
            + ", or confirm it if it still holds."
        )
        for s in stale:
            with st.container(border=True, key=f"{key}.q{s.number}"):
                st.markdown(f"**Q{s.number}** · :orange[{FLAG}] — {ui.md(s.question)}")
                st.markdown(f"Expected answer: {ui.md(s.ground_truth) if s.ground_truth else '—'}")
                for ls in s.links:
                    where = f"{ls.link.document} › {ls.link.section or '(before the first heading)'}"
                    st.caption(
                        f"{ui.md(where)} · {ui.md(ls.reason)} · linked to v{ls.link.version}, "
                        f"now v{ls.checked_version or '?'}"
                    )
                    old_col, new_col = st.columns(2)
                    with old_col:
                        st.markdown("**Old passage**")
                        st.text(ls.link.passage)
                    with new_col:
                        st.markdown("**New passage**")
                        st.text(ls.new_passage if ls.new_passage else "(section removed)")
                st.button(
                    "Confirm expected answer",
                    key=f"{key}.confirm.{s.number}",
                    on_click=_confirm,
                    args=(set_name, s.number, flash_key),
                    help="The expected answer still holds for the new policy: link it to the current passage.",
                )
    return len(stale)
