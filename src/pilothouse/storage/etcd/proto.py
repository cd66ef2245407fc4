"""The part of etcd's v3 gRPC API pilothouse speaks, as protobuf message classes.

The messages are declared here as a table — names, field numbers and types as
etcd's ``api/etcdserverpb/rpc.proto`` and ``api/mvccpb/kv.proto`` define them on
the wire — and built at import into a private descriptor pool, so no generated
code is checked in and nothing clashes with another library's copy of etcd's
protos in the default pool. The classes are protobuf's own (upb, in C), so
encoding and decoding cost what generated code would. Enums are declared as
int32: the same varint on the wire.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]

PACKAGE = "etcdserverpb"

_SCALARS = {
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "uint64": descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
}

# message -> [(field, number, type, repeated, oneof)]; a type not in _SCALARS is a message.
_ONE = ""
MESSAGES: dict[str, list[tuple[str, int, str, bool, str]]] = {
    "ResponseHeader": [
        ("cluster_id", 1, "uint64", False, _ONE),
        ("member_id", 2, "uint64", False, _ONE),
        ("revision", 3, "int64", False, _ONE),
        ("raft_term", 4, "uint64", False, _ONE),
    ],
    "KeyValue": [
        ("key", 1, "bytes", False, _ONE),
        ("create_revision", 2, "int64", False, _ONE),
        ("mod_revision", 3, "int64", False, _ONE),
        ("version", 4, "int64", False, _ONE),
        ("value", 5, "bytes", False, _ONE),
        ("lease", 6, "int64", False, _ONE),
    ],
    "Event": [
        ("type", 1, "int32", False, _ONE),  # PUT = 0, DELETE = 1
        ("kv", 2, "KeyValue", False, _ONE),
        ("prev_kv", 3, "KeyValue", False, _ONE),
    ],
    "RangeRequest": [
        ("key", 1, "bytes", False, _ONE),
        ("range_end", 2, "bytes", False, _ONE),
        ("limit", 3, "int64", False, _ONE),
        ("revision", 4, "int64", False, _ONE),
        ("sort_order", 5, "int32", False, _ONE),
        ("sort_target", 6, "int32", False, _ONE),
        ("serializable", 7, "bool", False, _ONE),
        ("keys_only", 8, "bool", False, _ONE),
        ("count_only", 9, "bool", False, _ONE),
    ],
    "RangeResponse": [
        ("header", 1, "ResponseHeader", False, _ONE),
        ("kvs", 2, "KeyValue", True, _ONE),
        ("more", 3, "bool", False, _ONE),
        ("count", 4, "int64", False, _ONE),
    ],
    "PutRequest": [
        ("key", 1, "bytes", False, _ONE),
        ("value", 2, "bytes", False, _ONE),
        ("lease", 3, "int64", False, _ONE),
        ("prev_kv", 4, "bool", False, _ONE),
    ],
    "PutResponse": [
        ("header", 1, "ResponseHeader", False, _ONE),
        ("prev_kv", 2, "KeyValue", False, _ONE),
    ],
    "DeleteRangeRequest": [
        ("key", 1, "bytes", False, _ONE),
        ("range_end", 2, "bytes", False, _ONE),
        ("prev_kv", 3, "bool", False, _ONE),
    ],
    "DeleteRangeResponse": [
        ("header", 1, "ResponseHeader", False, _ONE),
        ("deleted", 2, "int64", False, _ONE),
        ("prev_kvs", 3, "KeyValue", True, _ONE),
    ],
    "RequestOp": [
        ("request_range", 1, "RangeRequest", False, "request"),
        ("request_put", 2, "PutRequest", False, "request"),
        ("request_delete_range", 3, "DeleteRangeRequest", False, "request"),
        ("request_txn", 4, "TxnRequest", False, "request"),
    ],
    "ResponseOp": [
        ("response_range", 1, "RangeResponse", False, "response"),
        ("response_put", 2, "PutResponse", False, "response"),
        ("response_delete_range", 3, "DeleteRangeResponse", False, "response"),
        ("response_txn", 4, "TxnResponse", False, "response"),
    ],
    "Compare": [
        ("result", 1, "int32", False, _ONE),  # EQUAL, GREATER, LESS, NOT_EQUAL
        ("target", 2, "int32", False, _ONE),  # VERSION, CREATE, MOD, VALUE, LEASE
        ("key", 3, "bytes", False, _ONE),
        ("version", 4, "int64", False, "target_union"),
        ("create_revision", 5, "int64", False, "target_union"),
        ("mod_revision", 6, "int64", False, "target_union"),
        ("value", 7, "bytes", False, "target_union"),
        ("lease", 8, "int64", False, "target_union"),
        ("range_end", 64, "bytes", False, _ONE),
    ],
    "TxnRequest": [
        ("compare", 1, "Compare", True, _ONE),
        ("success", 2, "RequestOp", True, _ONE),
        ("failure", 3, "RequestOp", True, _ONE),
    ],
    "TxnResponse": [
        ("header", 1, "ResponseHeader", False, _ONE),
        ("succeeded", 2, "bool", False, _ONE),
        ("responses", 3, "ResponseOp", True, _ONE),
    ],
    "CompactionRequest": [
        ("revision", 1, "int64", False, _ONE),
        ("physical", 2, "bool", False, _ONE),
    ],
    "CompactionResponse": [("header", 1, "ResponseHeader", False, _ONE)],
    "WatchCreateRequest": [
        ("key", 1, "bytes", False, _ONE),
        ("range_end", 2, "bytes", False, _ONE),
        ("start_revision", 3, "int64", False, _ONE),
        ("progress_notify", 4, "bool", False, _ONE),
        ("filters", 5, "int32", True, _ONE),
        ("prev_kv", 6, "bool", False, _ONE),
        ("watch_id", 7, "int64", False, _ONE),
        ("fragment", 8, "bool", False, _ONE),
    ],
    "WatchCancelRequest": [("watch_id", 1, "int64", False, _ONE)],
    "WatchProgressRequest": [],
    "WatchRequest": [
        ("create_request", 1, "WatchCreateRequest", False, "request_union"),
        ("cancel_request", 2, "WatchCancelRequest", False, "request_union"),
        ("progress_request", 3, "WatchProgressRequest", False, "request_union"),
    ],
    "WatchResponse": [
        ("header", 1, "ResponseHeader", False, _ONE),
        ("watch_id", 2, "int64", False, _ONE),
        ("created", 3, "bool", False, _ONE),
        ("canceled", 4, "bool", False, _ONE),
        ("compact_revision", 5, "int64", False, _ONE),
        ("cancel_reason", 6, "string", False, _ONE),
        ("fragment", 7, "bool", False, _ONE),
        ("events", 11, "Event", True, _ONE),
    ],
    "LeaseGrantRequest": [("TTL", 1, "int64", False, _ONE), ("ID", 2, "int64", False, _ONE)],
    "LeaseGrantResponse": [
        ("header", 1, "ResponseHeader", False, _ONE),
        ("ID", 2, "int64", False, _ONE),
        ("TTL", 3, "int64", False, _ONE),
        ("error", 4, "string", False, _ONE),
    ],
    "LeaseRevokeRequest": [("ID", 1, "int64", False, _ONE)],
    "LeaseRevokeResponse": [("header", 1, "ResponseHeader", False, _ONE)],
    "LeaseKeepAliveRequest": [("ID", 1, "int64", False, _ONE)],
    "LeaseKeepAliveResponse": [
        ("header", 1, "ResponseHeader", False, _ONE),
        ("ID", 2, "int64", False, _ONE),
        ("TTL", 3, "int64", False, _ONE),
    ],
    "StatusRequest": [],
    "StatusResponse": [
        ("header", 1, "ResponseHeader", False, _ONE),
        ("version", 2, "string", False, _ONE),
        ("dbSize", 3, "int64", False, _ONE),
        ("leader", 4, "uint64", False, _ONE),
        ("raftIndex", 5, "uint64", False, _ONE),
        ("raftTerm", 6, "uint64", False, _ONE),
        ("raftAppliedIndex", 7, "uint64", False, _ONE),
        ("errors", 8, "string", True, _ONE),
        ("dbSizeInUse", 9, "int64", False, _ONE),
        ("isLearner", 10, "bool", False, _ONE),
    ],
}

# Compare.result and Compare.target, Event.type (etcd's enums).
EQUAL, GREATER, LESS, NOT_EQUAL = 0, 1, 2, 3
VERSION, CREATE, MOD, VALUE = 0, 1, 2, 3
PUT, DELETE = 0, 1


def _file() -> Any:
    f = descriptor_pb2.FileDescriptorProto(
        name="pilothouse/etcd_rpc.proto", package=PACKAGE, syntax="proto3"
    )
    for name, fields in MESSAGES.items():
        message = f.message_type.add(name=name)
        oneofs: list[str] = []
        for field_name, number, kind, repeated, oneof in fields:
            fd = message.field.add(name=field_name, number=number, json_name=field_name)
            fd.label = (
                descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
                if repeated
                else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
            )
            if kind in _SCALARS:
                fd.type = _SCALARS[kind]
            else:
                fd.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
                fd.type_name = f".{PACKAGE}.{kind}"
            if oneof:
                if oneof not in oneofs:
                    oneofs.append(oneof)
                    message.oneof_decl.add(name=oneof)
                fd.oneof_index = oneofs.index(oneof)
    return f


def _build() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in MESSAGES
    }


_CLASSES = _build()

ResponseHeader: Any = _CLASSES["ResponseHeader"]
KeyValue: Any = _CLASSES["KeyValue"]
Event: Any = _CLASSES["Event"]
RangeRequest: Any = _CLASSES["RangeRequest"]
RangeResponse: Any = _CLASSES["RangeResponse"]
PutRequest: Any = _CLASSES["PutRequest"]
PutResponse: Any = _CLASSES["PutResponse"]
DeleteRangeRequest: Any = _CLASSES["DeleteRangeRequest"]
DeleteRangeResponse: Any = _CLASSES["DeleteRangeResponse"]
RequestOp: Any = _CLASSES["RequestOp"]
ResponseOp: Any = _CLASSES["ResponseOp"]
Compare: Any = _CLASSES["Compare"]
TxnRequest: Any = _CLASSES["TxnRequest"]
TxnResponse: Any = _CLASSES["TxnResponse"]
CompactionRequest: Any = _CLASSES["CompactionRequest"]
CompactionResponse: Any = _CLASSES["CompactionResponse"]
WatchCreateRequest: Any = _CLASSES["WatchCreateRequest"]
WatchCancelRequest: Any = _CLASSES["WatchCancelRequest"]
WatchProgressRequest: Any = _CLASSES["WatchProgressRequest"]
WatchRequest: Any = _CLASSES["WatchRequest"]
WatchResponse: Any = _CLASSES["WatchResponse"]
LeaseGrantRequest: Any = _CLASSES["LeaseGrantRequest"]
LeaseGrantResponse: Any = _CLASSES["LeaseGrantResponse"]
LeaseRevokeRequest: Any = _CLASSES["LeaseRevokeRequest"]
LeaseRevokeResponse: Any = _CLASSES["LeaseRevokeResponse"]
LeaseKeepAliveRequest: Any = _CLASSES["LeaseKeepAliveRequest"]
LeaseKeepAliveResponse: Any = _CLASSES["LeaseKeepAliveResponse"]
StatusRequest: Any = _CLASSES["StatusRequest"]
StatusResponse: Any = _CLASSES["StatusResponse"]
