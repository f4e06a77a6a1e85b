"""The exported encoder graph, trimmed for how it is served: one text per call.

torch.onnx writes BERT's attention for padded batches: per layer, the attention mask becomes an
additive mask (Where) added to the scores before the softmax, and the softmax output goes through
IsNaN + Where to zero rows that were entirely padding. The embedder runs one text per call with no
padding, so its attention mask is all ones: the additive mask is 0 everywhere and the softmax never
yields NaN. Both are then identities (x + 0 == x, Where(False, 0, x) == x), so dropping them gives
bit-identical vectors, ~10% faster (they touch every heads x tokens x tokens score, 12 times).
The mask still feeds the mean pooling, which is left as exported.

Only the graph's structure is read (a protobuf subset declared here, so neither the `onnx` package
nor its ~11 MB are needed at serving time); every other field of the file passes through as
protobuf unknown fields, unchanged. The weights stay in their external file, mapped by ONNX Runtime.
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _model_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FileDescriptorProto(name="planbot_onnx_subset.proto", package="planbot_onnx_subset",
                                           syntax="proto2")
    T, R, O = descriptor_pb2.FieldDescriptorProto, descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED, \
        descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL

    def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
        m = f.message_type.add(name=name)
        for fname, number, label, ftype, type_name in fields:
            m.field.add(name=fname, number=number, label=label, type=ftype,
                        **({"type_name": type_name} if type_name else {}))

    string, msg = T.TYPE_STRING, T.TYPE_MESSAGE
    message("ValueInfo", [("name", 1, O, string, "")])  # onnx.ValueInfoProto
    message("Node", [("input", 1, R, string, ""), ("output", 2, R, string, ""),  # onnx.NodeProto
                     ("name", 3, O, string, ""), ("op_type", 4, O, string, ""), ("domain", 7, O, string, "")])
    message("Graph", [("node", 1, R, msg, ".planbot_onnx_subset.Node"),  # onnx.GraphProto
                      ("output", 12, R, msg, ".planbot_onnx_subset.ValueInfo")])
    message("Model", [("graph", 7, O, msg, ".planbot_onnx_subset.Graph")])  # onnx.ModelProto
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("planbot_onnx_subset.Model"))


def unmasked(model_bytes: bytes) -> tuple[bytes, int]:
    """The model without the attention-mask and NaN guards around each softmax, for inputs whose
    attention mask is all ones; returns (bytes, softmaxes changed). 0 changed: the graph is not the
    expected export, use it as it is."""
    model = _model_class()()
    model.ParseFromString(model_bytes)
    g = model.graph
    producer = {out: n for n in g.node for out in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    changed, rename = 0, {}
    for sm in [n for n in g.node if n.op_type == "Softmax" and not n.domain]:
        add = producer.get(sm.input[0])
        where = producer.get(add.input[1]) if add is not None and add.op_type == "Add" else None
        guards = [w for isnan in consumers.get(sm.output[0], []) if isnan.op_type == "IsNaN"
                  for w in consumers.get(isnan.output[0], [])
                  if w.op_type == "Where" and len(w.input) == 3 and w.input[2] == sm.output[0]]
        if where is None or where.op_type != "Where" or len(guards) != 1:
            continue
        sm.input[0] = add.input[0]  # scores + 0 -> scores
        rename[guards[0].output[0]] = sm.output[0]  # Where(IsNaN(p), 0, p) -> p
        changed += 1
    if not changed:
        return model_bytes, 0
    for n in g.node:
        for i, name in enumerate(n.input):
            if name in rename:
                n.input[i] = rename[name]
    needed, dead = {o.name for o in g.output}, []
    for i in range(len(g.node) - 1, -1, -1):  # drop what no longer feeds an output
        if any(out in needed for out in g.node[i].output):
            needed.update(g.node[i].input)
        else:
            dead.append(i)
    for i in dead:  # descending: earlier indices stay valid
        del g.node[i]
    return model.SerializeToString(), changed
