"""Why a backend did not run a case: a typed kind the backend (or the engine's gate) gives with every skip, so reports
group skips by what they mean, never by reading the words of a message.

| kind | meaning |
| --- | --- |
| not-installed | the backend's package or libraries are not installed here |
| no-gpu | it needs a GPU and there is none |
| built-not-run | it built the case for real (a build verdict) but has no GPU to run it: values unknown |
| unsupported-gpu | there is a GPU, but the backend's vendor refuses to run engines on it (NVIDIA's own message kept) |
| feature-missing | the backend lacks a feature the case needs (found by a valid twin of the case) |
| version | the case requires another version of the backend (`requires:`) |
| data-limit | the harness would not make the inputs (over a limit) |
| fewer-backends | a cross-backend diff with fewer than two backends' outputs |
| other | anything else (and skips in bundles written before kinds existed) |
"""

from __future__ import annotations

SKIP_KINDS: dict[str, str] = {  # kind -> the label reports group it under
    "not-installed": "backend not installed",
    "no-gpu": "no GPU",
    "built-not-run": "engine built, no GPU to run it",
    "unsupported-gpu": "GPU that cannot run the engine",
    "feature-missing": "feature the backend lacks",
    "version": "version requirement",
    "data-limit": "tier or data limit",
    "fewer-backends": "fewer than two backends ran",
    "other": "other reason",
}


def kind_of(record: dict) -> str:
    """A skip record's kind (`other` for a bundle written before kinds were recorded)."""
    kind = record.get("skip_kind")
    return kind if kind in SKIP_KINDS else "other"


def tag(kind: str | None) -> str:
    """The prefix a skip's message carries in pytest and Allure, which Allure's categories match."""
    return f"[{kind if kind in SKIP_KINDS else 'other'}]"
