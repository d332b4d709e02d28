"""A minimal dynamic provider for the toolchain test: it records each call in a JSON file, so the
test can see that the real engine drove create, read, update and delete."""

import json
import os
import uuid
from pathlib import Path

from pulumi import dynamic


def _log(event: str, **kw) -> None:
    path = Path(os.environ["TOY_LOG"])
    with path.open("a") as f:
        f.write(json.dumps({"event": event, **kw}) + "\n")


class ToyProvider(dynamic.ResourceProvider):
    def create(self, props):
        _log("create", greeting=props["greeting"])
        return dynamic.CreateResult(uuid.uuid4().hex[:8], {**props, "length": len(props["greeting"])})

    def read(self, id_, props):
        _log("read", id=id_)
        return dynamic.ReadResult(id_, props)

    def update(self, id_, olds, news):
        _log("update", id=id_, greeting=news["greeting"])
        return dynamic.UpdateResult({**news, "length": len(news["greeting"])})

    def delete(self, id_, props):
        _log("delete", id=id_)


class Toy(dynamic.Resource, module="toy", name="Toy"):
    def __init__(self, name, greeting, opts=None):
        super().__init__(ToyProvider(), name, {"greeting": greeting, "length": None}, opts)
