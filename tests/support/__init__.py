"""Test support shared by ``tests/`` and ``bench/``: the loopback Anthropic stand-in
(:mod:`tests.support.anthropic_server`) and the RAGAS judge responder
(:mod:`tests.support.ragas_responder`). Import it from the project root (``python -m bench.speedup``,
pytest's rootdir); no ``sys.path`` edits needed."""
