"""Builds lorabeam-client, generating its gRPC stubs from the repository's proto/ first.

The stubs (lorabeam_pb2.py, its typed .pyi, lorabeam_pb2_grpc.py) are made by grpcio-tools (a
build requirement, see pyproject.toml) into the wheel's lorabeam_client/_pb/ and never into the
checkout. The .proto is found at ../../proto/proto/lorabeam/v1/lorabeam.proto (pip builds a local
directory in place), or wherever $LORABEAM_PROTO says.
"""

import os
import re
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTO = Path(os.environ.get("LORABEAM_PROTO", HERE.parent.parent / "proto/proto/lorabeam/v1/lorabeam.proto"))


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        if not PROTO.is_file():
            raise SystemExit(
                f"lorabeam-client: {PROTO} not found; install from a lorabeam checkout "
                "(pip install ./clients/python) or set LORABEAM_PROTO to lorabeam.proto"
            )
        from grpc_tools import protoc

        out = Path(self.build_lib) / "lorabeam_client" / "_pb"
        out.mkdir(parents=True, exist_ok=True)
        include = protoc._get_resource_file_name("grpc_tools", "_proto")
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO.parent}",
            f"-I{include}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            PROTO.name,
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"lorabeam-client: grpc_tools.protoc failed on {PROTO}")
        # protoc writes `import lorabeam_pb2`: make it the package's own module.
        grpc_file = out / "lorabeam_pb2_grpc.py"
        text = re.sub(r"^import lorabeam_pb2 as", "from . import lorabeam_pb2 as", grpc_file.read_text(), flags=re.M)
        grpc_file.write_text(text)
        (out / "__init__.py").write_text('"""Stubs generated from lorabeam.proto at build time."""\n')


setup(cmdclass={"build_py": BuildWithStubs})
