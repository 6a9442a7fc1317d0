"""End-to-end tests in a real browser (``make e2e``); ``make test`` / plain ``pytest`` skip this folder."""
