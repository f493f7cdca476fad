"""Model store: FlashRank names, downloads, local directories and the checkpoint converter.

The converter (``bridge.models.convert``) needs the ``convert`` extra (onnx, safetensors) and is not
imported here, so the core install can resolve and download models without it.
"""

from bridge.config import DEFAULT_MODEL
from bridge.models.cache_dir import default_cache_dir, offline_reason
from bridge.models.download import download_model
from bridge.models.local import ModelFiles, inspect_directory, missing_files
from bridge.models.onnx_meta import OnnxSignature, TensorInfo, read_signature
from bridge.models.registry import KNOWN_MODELS, KnownModel, known_model_names
from bridge.models.resolver import resolve_model

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "KnownModel",
    "ModelFiles",
    "OnnxSignature",
    "TensorInfo",
    "default_cache_dir",
    "download_model",
    "inspect_directory",
    "known_model_names",
    "missing_files",
    "offline_reason",
    "read_signature",
    "resolve_model",
]
