"""Pretrained models (Keras Applications, TF Hub, local files) through one course cache.

The notebooks call everything through this package (`from course_lib import models`); each job
lives in its own module:

- `course_lib.models.registry`: the models the course knows (`APPLICATIONS`, `HUB_MODELS`) and
  their preprocessing.
- `course_lib.models.cache`: where each lives in the course cache, and downloads into it (pooch,
  TF Hub's resolver).
- `course_lib.models.loading`: `load_pretrained`, `load_hub`, `load_local`, with a loud offline fallback.
- `course_lib.models.prefetch`: `python -m course_lib prefetch`.
"""

from course_lib.models.cache import (
    download_file,
    hub_cache_dir,
    hub_module_dir,
    keras_weights_dir,
    network_reachable,
    save_weights_to_cache,
    saved_weights_cache_path,
    weights_cache_path,
)
from course_lib.models.loading import (
    SOURCES,
    LoadedModel,
    PretrainedFallbackWarning,
    load_hub,
    load_local,
    load_pretrained,
)
from course_lib.models.prefetch import prefetch_main
from course_lib.models.registry import (
    APPLICATIONS,
    DEFAULT_PREFETCH,
    HUB_MODELS,
    ApplicationSpec,
    HubSpec,
    application_spec,
    preprocess_input,
)

__all__ = [
    "APPLICATIONS",
    "DEFAULT_PREFETCH",
    "HUB_MODELS",
    "SOURCES",
    "ApplicationSpec",
    "HubSpec",
    "LoadedModel",
    "PretrainedFallbackWarning",
    "application_spec",
    "download_file",
    "hub_cache_dir",
    "hub_module_dir",
    "keras_weights_dir",
    "load_hub",
    "load_local",
    "load_pretrained",
    "network_reachable",
    "prefetch_main",
    "preprocess_input",
    "save_weights_to_cache",
    "saved_weights_cache_path",
    "weights_cache_path",
]
