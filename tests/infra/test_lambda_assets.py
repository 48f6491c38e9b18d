"""Every Python function is built one way (cdk_constructs/lambda_function.py): its code asset holds the shared
library `common` and its own folders only, and its handler imports from that asset alone, as Lambda runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cdk_constructs.lambda_function import POWERTOOLS_LAYER_VERSION
from tests.infra.synth import SHAPES, synth

pytestmark = pytest.mark.slow

# Imports the handler from the asset directory only: -I keeps the working directory and PYTHONPATH (this
# repository's lambdas/) off sys.path, so a module missing from the asset fails the import; -B writes no
# bytecode into the asset.
IMPORT = """
import importlib, sys
asset, handler = sys.argv[1], sys.argv[2]
sys.path.insert(0, asset)
module, function = handler.rsplit(".", 1)
assert callable(getattr(importlib.import_module(module), function)), handler
assert importlib.import_module("common").__file__.startswith(asset), "common imported from outside the asset"
"""


def our_functions(shape: str) -> list[tuple[str, Path, dict[str, Any]]]:
    """(stack/logical id, asset directory, properties) of every function built by the project's builder."""
    result = synth(shape, "dev")
    found = []
    for name, template in result.templates().items():
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::Lambda::Function" and resource["Properties"].get("Runtime") == "python3.13":
                asset = result.outdir / resource["Metadata"]["aws:asset:path"]
                found.append((f"{name}/{logical_id}", asset, resource["Properties"]))
    return found


@pytest.mark.parametrize("shape", SHAPES)
def test_every_function_uses_the_one_layer_pin_and_names_its_service(shape):
    functions = our_functions(shape)
    assert len(functions) >= 8
    for where, _asset, props in functions:
        layers = props["Layers"]
        # The certificate issuer has its own second layer (acme, cdk_constructs/certificates/layer.py).
        assert len(layers) == 1 + (props["Handler"] == "cert_issuer.index.handler"), where
        [layer] = [layer for layer in layers if "AWSLambdaPowertoolsPythonV3" in json.dumps(layer)]
        assert f':layer:AWSLambdaPowertoolsPythonV3-python313-x86_64:{POWERTOOLS_LAYER_VERSION}"' in json.dumps(layer)
        assert props["Architectures"] == ["x86_64"], where
        service = props["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        assert service not in ("", "Function"), f"{where}: POWERTOOLS_SERVICE_NAME {service!r} names no service"


@pytest.mark.parametrize("shape", SHAPES)
def test_each_asset_holds_common_and_its_own_folders_and_its_handler_imports_from_it(shape):
    for where, asset, props in our_functions(shape):
        folders = {entry.name for entry in asset.iterdir()}
        handler_folder = props["Handler"].split(".", 1)[0]
        assert {"common", handler_folder} <= folders, where
        if handler_folder in ("smtp_credentials", "database_users", "greenlight_admin"):
            assert folders == {"common", handler_folder}, f"{where}: other features' code in the asset: {folders}"
        assert not list(asset.rglob("__pycache__")), where
        run = subprocess.run(
            [sys.executable, "-I", "-B", "-c", IMPORT, str(asset), props["Handler"]],
            capture_output=True,
            text=True,
            cwd=asset,
            check=False,
            env={"AWS_DEFAULT_REGION": "eu-west-1"},
        )
        assert run.returncode == 0, f"{where}: {props['Handler']} does not import from its asset:\n{run.stderr}"
