"""Display formatting on the UI side (pages/_format.py): durations, metric lines, speedups."""

from __future__ import annotations

from pages._format import duration, metric_line, speedup_line
from rag_core.summary import GenerationStats, MetricStats


def test_metric_line_counts_every_question_of_the_run() -> None:
    stats = MetricStats(suite="offline", name="rouge_l", mean=0.8612, scored=9, failed=1, total=10)
    assert metric_line(stats) == "0.86 · 9 of 10 scored (1 failed)"
    # A cancelled run: 6 of 12 scored, not "6 of 6".
    cancelled = MetricStats(suite="offline", name="rouge_l", mean=0.5, scored=6, failed=0, total=12)
    assert metric_line(cancelled) == "0.50 · 6 of 12 scored (6 not scored)"
    assert metric_line(MetricStats(suite="judge", name="faithfulness", scored=0, failed=3, total=3)) == (
        "— · 0 of 3 scored (3 failed)"
    )
    assert "± 0.05" in metric_line(
        MetricStats(suite="offline", name="x", mean=0.5, stdev=0.05, scored=2, total=2)
    )


def test_speedup_line_shows_the_wave_ceiling_and_efficiency() -> None:
    g = GenerationStats(concurrency=8, speedup_measured=5.8, ideal_speedup=6.0)
    assert speedup_line(g) == "5.8× measured (ideal 6.0×, 97% of it)"
    assert speedup_line(GenerationStats(speedup_estimated=2.9, ideal_speedup=4.0)) == (
        "2.9× estimated (ideal 4.0×, 72% of it)"
    )
    assert speedup_line(GenerationStats()) is None


def test_duration() -> None:
    assert duration(None) == "—" and duration(0.84) == "0.8 s" and duration(185) == "3 min 05 s"
