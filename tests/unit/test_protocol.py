"""The committed generated code matches runtime/wire/protocol/ember.proto (``make proto``)."""

from __future__ import annotations

import importlib.resources
import re
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

from ember.runtime.wire.protocol import ember_pb2, ember_pb2_grpc

PROTO_DIR = Path(__file__).resolve().parents[2] / "runtime" / "wire" / "protocol"


def _compile(proto: Path) -> descriptor_pb2.FileDescriptorProto:
    from grpc_tools import protoc

    include = str(importlib.resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as out:
        target = Path(out) / "set.pb"
        code = protoc.main(
            [
                "protoc",
                f"-Iember/runtime/wire/protocol={PROTO_DIR}",
                f"-I{include}",
                f"--descriptor_set_out={target}",
                str(proto),
            ]
        )
        assert code == 0, f"protoc failed on {proto}"
        files = descriptor_pb2.FileDescriptorSet.FromString(target.read_bytes()).file
    (compiled,) = files
    _strip_json_names(compiled.message_type)
    return compiled


def _strip_json_names(messages) -> None:
    # The Python generator leaves out json_name; protoc's descriptor set has it.
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _strip_json_names(message.nested_type)


def test_generated_messages_match_the_proto():
    compiled = _compile(PROTO_DIR / "ember.proto")
    committed = descriptor_pb2.FileDescriptorProto.FromString(ember_pb2.DESCRIPTOR.serialized_pb)
    assert compiled == committed, "runtime/wire/protocol is stale: run `make proto` and commit"


def test_generated_stubs_cover_every_method():
    source = Path(ember_pb2_grpc.__file__).read_text()
    for service in ember_pb2.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            path = f"/ember.{service.name}/{method.name}"
            assert path in source, f"{path} missing from ember_pb2_grpc.py: run `make proto`"
    stubs = set(re.findall(r"^class (\w+)Stub", source, re.M))
    assert stubs == set(ember_pb2.DESCRIPTOR.services_by_name)
