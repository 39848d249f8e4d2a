"""docker-compose.yml is a valid Compose file, and what its services run exists in the image.

No Docker daemon runs here, so ``docker compose config`` cannot check the file; the Compose
Specification's own JSON schema (vendored in ``compose-spec/`` with its licence) does, for
the file and for the override examples the deployment guide asks operators to copy.
"""

from __future__ import annotations

import json
import re
import tomllib
from importlib.metadata import distribution, entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DEPLOY_README = REPO / "deploy" / "README.md"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
SCHEMA = Path(__file__).with_name("compose-spec") / "compose-spec.json"
YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def _errors(validator: Draft7Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_follows_the_compose_specification(validator: Draft7Validator) -> None:
    assert _errors(validator, _compose()) == []


def test_the_schema_has_teeth(validator: Draft7Validator) -> None:
    broken = _compose()
    broken["services"]["worker"]["restart"] = ["always"]
    broken["services"]["api"]["helthcheck"] = broken["services"]["api"].pop("healthcheck")
    assert len(_errors(validator, broken)) == 2


def override_examples() -> list[dict[str, Any]]:
    blocks = [yaml.safe_load(block) for block in YAML_BLOCK.findall(DEPLOY_README.read_text())]
    return [block for block in blocks if isinstance(block, dict) and "services" in block]


def test_the_guidesoverride_examples_follow_the_specification(validator: Draft7Validator) -> None:
    examples = override_examples()
    assert examples, "deploy/README.md shows no compose override"
    for example in examples:
        assert _errors(validator, example) == []


def _dockerfile_entrypoint() -> list[str]:
    (line,) = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("ENTRYPOINT")]
    return json.loads(line.removeprefix("ENTRYPOINT"))


def _image_console_scripts() -> set[str]:
    """Console scripts of the project and of the dependencies the image installs with it."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = {pyproject["project"]["name"]}
    names |= {Requirement(dep).name for dep in pyproject["project"]["dependencies"]}
    scripts = set()
    for script in entry_points(group="console_scripts"):
        if script.dist is not None and script.dist.name in names:
            scripts.add(script.name)
    assert distribution(pyproject["project"]["name"]).entry_points, "the project is not installed"
    return scripts


def test_every_service_of_the_image_runs_one_of_its_entry_points() -> None:
    scripts = _image_console_scripts()
    image_services = {name: s for name, s in _compose()["services"].items() if "build" in s}
    assert set(image_services) >= {"migrate", "api", "worker", "dispatcher"}
    for name, service in image_services.items():
        entrypoint = service.get("entrypoint", _dockerfile_entrypoint())
        assert entrypoint[0] in scripts, f"{name} runs {entrypoint[0]!r}, no entry point of the image"
