from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Provenance(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVENANCE_UNSPECIFIED: _ClassVar[Provenance]
    PROVENANCE_WARM_TARGET: _ClassVar[Provenance]
    PROVENANCE_TRANSFERRED: _ClassVar[Provenance]
    PROVENANCE_FALLBACK: _ClassVar[Provenance]
    PROVENANCE_ONLINE: _ClassVar[Provenance]

class LifecycleStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIFECYCLE_STAGE_UNSPECIFIED: _ClassVar[LifecycleStage]
    LIFECYCLE_STAGE_NEW: _ClassVar[LifecycleStage]
    LIFECYCLE_STAGE_TRANSFERRED: _ClassVar[LifecycleStage]
    LIFECYCLE_STAGE_WARMING: _ClassVar[LifecycleStage]
    LIFECYCLE_STAGE_WARM: _ClassVar[LifecycleStage]
PROVENANCE_UNSPECIFIED: Provenance
PROVENANCE_WARM_TARGET: Provenance
PROVENANCE_TRANSFERRED: Provenance
PROVENANCE_FALLBACK: Provenance
PROVENANCE_ONLINE: Provenance
LIFECYCLE_STAGE_UNSPECIFIED: LifecycleStage
LIFECYCLE_STAGE_NEW: LifecycleStage
LIFECYCLE_STAGE_TRANSFERRED: LifecycleStage
LIFECYCLE_STAGE_WARMING: LifecycleStage
LIFECYCLE_STAGE_WARM: LifecycleStage

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "k", "exclude_item_ids", "source_item_ids", "exclude_seen", "strategy")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SEEN_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    k: int
    exclude_item_ids: _containers.RepeatedScalarFieldContainer[str]
    source_item_ids: _containers.RepeatedScalarFieldContainer[str]
    exclude_seen: bool
    strategy: str
    def __init__(self, user_id: _Optional[str] = ..., k: _Optional[int] = ..., exclude_item_ids: _Optional[_Iterable[str]] = ..., source_item_ids: _Optional[_Iterable[str]] = ..., exclude_seen: _Optional[bool] = ..., strategy: _Optional[str] = ...) -> None: ...

class ScoredItem(_message.Message):
    __slots__ = ("item_id", "score")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("items", "provenance", "model_version", "strategy", "fallback_reason", "unknown_item_ids", "stage")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    provenance: Provenance
    model_version: str
    strategy: str
    fallback_reason: str
    unknown_item_ids: _containers.RepeatedScalarFieldContainer[str]
    stage: LifecycleStage
    def __init__(self, items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., provenance: _Optional[_Union[Provenance, str]] = ..., model_version: _Optional[str] = ..., strategy: _Optional[str] = ..., fallback_reason: _Optional[str] = ..., unknown_item_ids: _Optional[_Iterable[str]] = ..., stage: _Optional[_Union[LifecycleStage, str]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("user_id", "item_ids", "source_item_ids", "strategy")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    source_item_ids: _containers.RepeatedScalarFieldContainer[str]
    strategy: str
    def __init__(self, user_id: _Optional[str] = ..., item_ids: _Optional[_Iterable[str]] = ..., source_item_ids: _Optional[_Iterable[str]] = ..., strategy: _Optional[str] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("items", "unknown_item_ids", "provenance", "model_version", "strategy", "fallback_reason", "stage")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    unknown_item_ids: _containers.RepeatedScalarFieldContainer[str]
    provenance: Provenance
    model_version: str
    strategy: str
    fallback_reason: str
    stage: LifecycleStage
    def __init__(self, items: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., unknown_item_ids: _Optional[_Iterable[str]] = ..., provenance: _Optional[_Union[Provenance, str]] = ..., model_version: _Optional[str] = ..., strategy: _Optional[str] = ..., fallback_reason: _Optional[str] = ..., stage: _Optional[_Union[LifecycleStage, str]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("bundle_version", "created_at", "strategy", "feedback", "source_domain", "target_domain", "source_embedding_dim", "target_embedding_dim", "num_source_items", "num_target_items", "num_source_users", "num_target_users", "metrics_json", "max_k", "max_request_ids", "encoder_max_history")
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    TARGET_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    TARGET_EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    NUM_SOURCE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    NUM_TARGET_ITEMS_FIELD_NUMBER: _ClassVar[int]
    NUM_SOURCE_USERS_FIELD_NUMBER: _ClassVar[int]
    NUM_TARGET_USERS_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    MAX_K_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    ENCODER_MAX_HISTORY_FIELD_NUMBER: _ClassVar[int]
    bundle_version: str
    created_at: str
    strategy: str
    feedback: str
    source_domain: str
    target_domain: str
    source_embedding_dim: int
    target_embedding_dim: int
    num_source_items: int
    num_target_items: int
    num_source_users: int
    num_target_users: int
    metrics_json: str
    max_k: int
    max_request_ids: int
    encoder_max_history: int
    def __init__(self, bundle_version: _Optional[str] = ..., created_at: _Optional[str] = ..., strategy: _Optional[str] = ..., feedback: _Optional[str] = ..., source_domain: _Optional[str] = ..., target_domain: _Optional[str] = ..., source_embedding_dim: _Optional[int] = ..., target_embedding_dim: _Optional[int] = ..., num_source_items: _Optional[int] = ..., num_target_items: _Optional[int] = ..., num_source_users: _Optional[int] = ..., num_target_users: _Optional[int] = ..., metrics_json: _Optional[str] = ..., max_k: _Optional[int] = ..., max_request_ids: _Optional[int] = ..., encoder_max_history: _Optional[int] = ...) -> None: ...
