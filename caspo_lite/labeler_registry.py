"""Step labelers by name: ``verify`` (exact checks), ``rollout``, ``verify+rollout``, ``judge``.

Its own module because the model-based labelers (`caspo_lite.model_labelers`) build on the pure
ones (`caspo_lite.labelers`): the registry sits above both, so neither imports the other
backwards and no labeler has to register itself by being imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from caspo_lite.labelers import Labeler, VerifyLabeler
from caspo_lite.model_labelers import JudgeLabeler, RolloutLabeler, verify_rollout
from caspo_lite.registry import Registry

LABELERS: Registry[Callable[..., Labeler]] = Registry(
    "labeler",
    {
        "verify": VerifyLabeler,
        "rollout": RolloutLabeler,
        "verify+rollout": verify_rollout,
        "judge": JudgeLabeler,
    },
)


def get_labeler(name: str, **options: Any) -> Labeler:
    """The labeler called ``name``; ConfigError (one line) names the known ones."""
    return LABELERS[name](**options)
