import datetime

from coldbridge.v1 import recommender_pb2 as _recommender_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Domain(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOMAIN_UNSPECIFIED: _ClassVar[Domain]
    DOMAIN_SOURCE: _ClassVar[Domain]
    DOMAIN_TARGET: _ClassVar[Domain]

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_IMPLICIT: _ClassVar[EventKind]
    EVENT_KIND_RATING: _ClassVar[EventKind]

class RejectionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECTION_REASON_UNSPECIFIED: _ClassVar[RejectionReason]
    REJECTION_REASON_EMPTY_ID: _ClassVar[RejectionReason]
    REJECTION_REASON_UNKNOWN_DOMAIN: _ClassVar[RejectionReason]
    REJECTION_REASON_UNKNOWN_KIND: _ClassVar[RejectionReason]
    REJECTION_REASON_UNKNOWN_ITEM: _ClassVar[RejectionReason]
    REJECTION_REASON_INVALID_VALUE: _ClassVar[RejectionReason]
    REJECTION_REASON_DUPLICATE_EVENT: _ClassVar[RejectionReason]
DOMAIN_UNSPECIFIED: Domain
DOMAIN_SOURCE: Domain
DOMAIN_TARGET: Domain
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_IMPLICIT: EventKind
EVENT_KIND_RATING: EventKind
REJECTION_REASON_UNSPECIFIED: RejectionReason
REJECTION_REASON_EMPTY_ID: RejectionReason
REJECTION_REASON_UNKNOWN_DOMAIN: RejectionReason
REJECTION_REASON_UNKNOWN_KIND: RejectionReason
REJECTION_REASON_UNKNOWN_ITEM: RejectionReason
REJECTION_REASON_INVALID_VALUE: RejectionReason
REJECTION_REASON_DUPLICATE_EVENT: RejectionReason

class Event(_message.Message):
    __slots__ = ("event_id", "user_id", "item_id", "domain", "kind", "value", "timestamp")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_id: str
    item_id: str
    domain: Domain
    kind: EventKind
    value: float
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., domain: _Optional[_Union[Domain, str]] = ..., kind: _Optional[_Union[EventKind, str]] = ..., value: _Optional[float] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("sequence", "events")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, sequence: _Optional[int] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class EventRejection(_message.Message):
    __slots__ = ("index", "event_id", "reason", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    event_id: str
    reason: RejectionReason
    message: str
    def __init__(self, index: _Optional[int] = ..., event_id: _Optional[str] = ..., reason: _Optional[_Union[RejectionReason, str]] = ..., message: _Optional[str] = ...) -> None: ...

class EventAck(_message.Message):
    __slots__ = ("sequence", "accepted", "rejections", "log_position")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    LOG_POSITION_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    accepted: int
    rejections: _containers.RepeatedCompositeFieldContainer[EventRejection]
    log_position: int
    def __init__(self, sequence: _Optional[int] = ..., accepted: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[EventRejection, _Mapping]]] = ..., log_position: _Optional[int] = ...) -> None: ...

class GetUserStateRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class UserState(_message.Message):
    __slots__ = ("user_id", "stage", "provenance", "strategy", "bundle_version", "source_events", "target_events", "online_updates", "last_update_time", "seen_items")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENTS_FIELD_NUMBER: _ClassVar[int]
    TARGET_EVENTS_FIELD_NUMBER: _ClassVar[int]
    ONLINE_UPDATES_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SEEN_ITEMS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    stage: _recommender_pb2.LifecycleStage
    provenance: _recommender_pb2.Provenance
    strategy: str
    bundle_version: str
    source_events: int
    target_events: int
    online_updates: int
    last_update_time: _timestamp_pb2.Timestamp
    seen_items: int
    def __init__(self, user_id: _Optional[str] = ..., stage: _Optional[_Union[_recommender_pb2.LifecycleStage, str]] = ..., provenance: _Optional[_Union[_recommender_pb2.Provenance, str]] = ..., strategy: _Optional[str] = ..., bundle_version: _Optional[str] = ..., source_events: _Optional[int] = ..., target_events: _Optional[int] = ..., online_updates: _Optional[int] = ..., last_update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seen_items: _Optional[int] = ...) -> None: ...
