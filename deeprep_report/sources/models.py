"""Model loaders: ``.keras`` and legacy ``.h5`` files, SavedModel folders, the built-in demo,
``keras.applications`` architectures and Python factories.

Files load with Keras ``safe_mode=True``. Before that, the stored config is
scanned for Lambda layers so the refusal names the layer and the opt-in key
(``models[i].allow_lambda``) instead of surfacing Keras's deserialization error.
A SavedModel folder is a program (TensorFlow ops that can read and write files,
out of ``safe_mode``'s reach), so it loads only with
``models[i].allow_saved_model_code: true``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from deeprep_report.config import Config, ModelSpec
from deeprep_report.errors import ConfigError, did_you_mean, first_line
from deeprep_report.sources.datasets import file_sha256


@dataclass
class LoadedModel:
    """A Keras model plus what the report needs to say where it came from."""

    name: str
    model: Any  # keras.Model; typed loosely so this module imports without TensorFlow
    source: str
    fingerprint: str
    file: Path | None


def load_model(config: Config, index: int) -> LoadedModel:
    """Load ``models[index]``; every problem is a :class:`ConfigError` naming that entry's field."""
    spec = config.pipeline.models[index]
    where = f"models[{index}]"
    if spec.builtin is not None:
        from deeprep_report.sources import demo, text_demo

        path = text_demo.text_classifier_path() if spec.builtin == "text_demo" else demo.digits_cnn_path(spec.builtin)
        model = _load_file(config, spec, path, f"{where}.builtin")
        return LoadedModel(spec.name, model, f"builtin:{spec.builtin}", file_sha256(path), path)
    if spec.path is not None:
        path = config.resolve(spec.path)
        if not path.exists():
            raise config.error(f"{where}.path", f"no such file {spec.path!r}")
        if path.is_dir():
            model, reader = _load_saved_model(config, spec, path, f"{where}.path")
            source = f"savedmodel:{path}" if reader == "v2" else f"savedmodel-v1:{path}"
            return LoadedModel(spec.name, model, source, _folder_sha256(path), path)
        model = _load_file(config, spec, path, f"{where}.path")
        return LoadedModel(spec.name, model, f"file:{path}", file_sha256(path), path)
    if spec.preset is not None:
        model, folder = _preset(config, spec, f"{where}.preset")
        return LoadedModel(spec.name, model, f"preset:{folder}", _folder_sha256(folder), folder)
    if spec.application is not None:
        model = _application(config, spec, f"{where}.application")
        return LoadedModel(spec.name, model, f"application:{spec.application}", weights_sha256(model), None)
    model = _factory(config, spec, f"{where}.factory")
    return LoadedModel(spec.name, model, f"factory:{spec.factory}", weights_sha256(model), None)


def _load_file(config: Config, spec: ModelSpec, path: Path, field: str) -> Any:
    import keras

    shown = spec.path or str(path)
    if path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise config.error(field, f"{shown!r}: expected a .keras or .h5 file or a SavedModel folder")
    if not spec.allow_lambda:
        lambdas = lambda_layers(path)
        if lambdas:
            index = field.split(".")[0]
            raise config.error(
                field,
                f"model {spec.name!r} contains a Lambda layer {lambdas[0]!r}, which runs Python code stored in "
                f"the file; set {index}.allow_lambda: true to load it if you trust {shown!r}",
            )
    index = field.split(".")[0]
    for position, module in enumerate(spec.custom_objects):
        try:
            with _pipeline_folder_importable(config):
                importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - user code
            raise config.error(f"{index}.custom_objects[{position}]",
                               f"cannot import {module!r}: {type(exc).__name__}: {first_line(exc)}") from None
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not spec.allow_lambda)
    except Exception as exc:  # Keras raises many types for a damaged or foreign file
        hint = ("; if it holds custom layers, name the module that registers them in " + f"{index}.custom_objects"
                if "custom" in str(exc).lower() or "Could not locate" in str(exc) else "")
        raise config.error(field, f"cannot load {shown!r}: {first_line(exc)}{hint}") from None


def lambda_layers(path: Path) -> list[str]:
    """Names of Lambda layers in a saved model's config (empty when unreadable: Keras reports that)."""
    try:
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
        else:
            import h5py

            with h5py.File(path, "r") as handle:
                raw = handle.attrs.get("model_config")
                config = json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw is not None else {}
    except Exception:  # noqa: BLE001 - a damaged file is reported by the loader itself
        return []
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                found.append(str((node.get("config") or {}).get("name", "lambda")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def _load_saved_model(config: Config, spec: ModelSpec, path: Path, field: str) -> tuple[Any, str]:
    """(the SavedModel's serving outputs as a Keras model, which TensorFlow loader read it)."""
    from deeprep_report.sources.savedmodels import SavedModelError, load_saved_model

    if not (path / "saved_model.pb").is_file():
        raise config.error(field, f"{spec.path!r} is a folder without saved_model.pb; expected a SavedModel")
    if not spec.allow_saved_model_code:
        index = field.split(".")[0]
        raise config.error(field, f"{spec.path!r} is a SavedModel: its graph runs the TensorFlow ops stored in the "
                                  f"folder (they can read and write files; Keras safe_mode does not apply); set "
                                  f"{index}.allow_saved_model_code: true to load it if you trust it, or load a "
                                  f".keras file")
    try:
        return load_saved_model(path, spec.name)
    except SavedModelError as exc:
        raise config.error(field, f"cannot load SavedModel {spec.path!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - TensorFlow raises many types for a damaged folder
        raise config.error(field, f"cannot load SavedModel {spec.path!r}: {first_line(exc)}") from None


def _application(config: Config, spec: ModelSpec, field: str) -> Any:
    import keras

    builder = getattr(keras.applications, spec.application, None)
    if not callable(builder) or spec.application.startswith("_"):
        names = [n for n in dir(keras.applications) if n[:1].isupper()]
        raise config.error(field, f"no keras.applications model {spec.application!r}{did_you_mean(spec.application, names)}")
    options = {"weights": None, **spec.options}
    keras.utils.set_random_seed(config.pipeline.run.seed)  # weights=None: the same config builds the same model
    weights = options["weights"]
    if weights is not None and not Path(str(weights)).is_file():
        raise config.error(f"{field.split('.')[0]}.options.weights",
                           f"weights must be null or a local file (nothing is downloaded), got {weights!r}")
    try:
        return builder(**options)
    except Exception as exc:  # noqa: BLE001 - bad options for the architecture
        raise config.error(field, f"cannot build {spec.application}: {first_line(exc)}") from None


def _preset(config: Config, spec: ModelSpec, field: str) -> tuple[Any, Path]:
    """A keras-hub backbone from a local folder; nothing is downloaded (a name that is not a folder is refused,
    so keras-hub never reaches for Kaggle or the Hugging Face Hub)."""
    from deeprep_report.sources.tokenizers import package_path

    try:
        folder = package_path(spec.preset)
    except FileNotFoundError as exc:
        raise config.error(field, f"{spec.preset!r}: {exc}") from None
    folder = folder if folder.is_absolute() else config.resolve(str(folder))
    if not folder.is_dir():
        raise config.error(field, f"no preset folder {spec.preset!r} (presets are read from local folders only)")
    if not (folder / "config.json").is_file():
        raise config.error(field, f"{spec.preset!r} has no config.json; expected a keras-hub or Hugging Face folder")
    try:
        import keras_hub
    except ImportError:
        raise config.error(field, "preset models need keras-hub (pip install keras-hub)") from None
    try:
        return keras_hub.models.Backbone.from_preset(str(folder), **spec.options), folder
    except Exception as exc:  # noqa: BLE001 - keras-hub raises many types for a folder it cannot read
        raise config.error(field, f"cannot load preset {spec.preset!r}: {first_line(exc)}") from None


def _factory(config: Config, spec: ModelSpec, field: str) -> Any:
    """Import ``package.module:function`` (the pipeline's folder is importable) and call it with ``options``."""
    import keras

    module_name, _, attr = spec.factory.partition(":")
    keras.utils.set_random_seed(config.pipeline.run.seed)  # a factory that initialises randomly: reproducible
    try:
        with _pipeline_folder_importable(config):
            module = importlib.import_module(module_name)
            target: Any = module
            for part in attr.split("."):
                target = getattr(target, part)
            model = target(**spec.options)
    except (ImportError, AttributeError) as exc:
        raise config.error(field, f"cannot import {spec.factory!r}: {first_line(exc)}") from None
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code
        raise config.error(field, f"{spec.factory!r} raised {type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(model, keras.Model):
        raise config.error(field, f"{spec.factory!r} returned {type(model).__name__}, expected a keras.Model")
    return model


@contextlib.contextmanager
def _pipeline_folder_importable(config: Config) -> Iterator[None]:
    """The pipeline's folder on ``sys.path`` while a user's module is imported (factories, custom objects)."""
    added = str(config.base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(config.base_dir))
    try:
        yield
    finally:
        if added:
            sys.path.remove(str(config.base_dir))


def _folder_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode())
        digest.update(bytes.fromhex(file_sha256(file).split(":")[1]))
    return "sha256:" + digest.hexdigest()


def weights_sha256(model: Any) -> str:
    """Fingerprint of a model built in code: its architecture config and every weight's bytes."""
    digest = hashlib.sha256()
    try:
        digest.update(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    except Exception:  # noqa: BLE001 - subclassed models may not implement get_config
        digest.update(type(model).__name__.encode())
    for weight in model.weights:
        digest.update(weight.path.encode())
        digest.update(weight.numpy().tobytes())
    return "sha256:" + digest.hexdigest()
