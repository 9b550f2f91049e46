//! One vocabulary for what becomes of input that stackd refuses, ignores or caps: each reason
//! once, with its exact message (what a sender reads in an HTTP error) and its label value (what
//! Prometheus counts). Parse errors keep their own enums beside their parsers
//! ([`crate::protocol::statsd::LineError`], [`crate::protocol::influx::ErrorKind`]), each with a
//! `reason()` of the same kind.
//!
//! | counter | label | values |
//! |---|---|---|
//! | `stackd_lines_rejected_total` | `reason` | [`Reject::reason`], and the parsers' reasons |
//! | `stackd_lines_ignored_total` | `reason` | [`Ignored::reason`] |
//! | `stackd_limit_hits_total` | `limit` | [`Limit::label`] |
//! | `stackd_requests_rejected_total` | `reason` | [`RequestReject::reason`] |

/// Why a well-formed line (or one sample of it) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("app limit reached (--max-apps)")]
    AppLimit,
    #[error("stack sample count is negative")]
    NegativeCount,
    #[error("stack sample count is not a whole number")]
    FractionalCount,
    #[error("stack sample count is larger than 1000000000000")]
    CountTooLarge,
    #[error("missing numeric field \"value\"")]
    MissingValue,
    #[error("stack samples must be gauges or counters")]
    WrongType,
    #[error("Stacktrace point without a string field \"stacktrace\"")]
    MissingStacktrace,
    #[error("timestamp out of range")]
    BadTimestamp,
    #[error("timestamp older than the retention (--retention)")]
    TooOld,
    #[error("timestamp too far in the future")]
    InFuture,
    #[error("the store cannot be read and this sample's time bucket is only on disk; retry later")]
    StoreUnavailable,
    #[error("gauge series limit reached (--max-series-per-app)")]
    SeriesLimit,
    #[error("series limit of all apps reached (--max-series)")]
    SeriesTotalLimit,
    /// Two names that become one Prometheus name (`heap.usage`, `heapUsage`), or a counter and
    /// a gauge of one name: the first one seen keeps it.
    #[error("another name (or type) is already exported under this metric's Prometheus name")]
    NameCollision,
    /// A metric or label name longer than `--max-name-length` (label values are cut instead).
    #[error("metric or label name longer than --max-name-length")]
    NameTooLong,
    /// A number this input's senders never write (a decimal comma outside Spark's names).
    #[error("value is not a finite number")]
    BadValue,
    /// A bug: handling the input panicked. The input is dropped, stackd carries on.
    #[error("internal error")]
    Internal,
}

impl Reject {
    /// Every value, for the counters' series present at 0 from the start.
    pub const ALL: [Self; 17] = [
        Self::AppLimit,
        Self::NegativeCount,
        Self::FractionalCount,
        Self::CountTooLarge,
        Self::MissingValue,
        Self::WrongType,
        Self::MissingStacktrace,
        Self::BadTimestamp,
        Self::TooOld,
        Self::InFuture,
        Self::StoreUnavailable,
        Self::SeriesLimit,
        Self::SeriesTotalLimit,
        Self::NameCollision,
        Self::NameTooLong,
        Self::BadValue,
        Self::Internal,
    ];

    /// Bounded label value of `stackd_lines_rejected_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::AppLimit => "app_limit",
            Self::NegativeCount => "negative_count",
            Self::FractionalCount => "fractional_count",
            Self::CountTooLarge => "count_too_large",
            Self::MissingValue => "missing_value",
            Self::WrongType => "wrong_type",
            Self::MissingStacktrace => "missing_stacktrace",
            Self::BadTimestamp => "bad_timestamp",
            Self::TooOld => "too_old",
            Self::InFuture => "in_future",
            Self::StoreUnavailable => "store_unavailable",
            Self::SeriesLimit => "series_limit",
            Self::SeriesTotalLimit => "series_total_limit",
            Self::NameCollision => "name_collision",
            Self::NameTooLong => "name_too_long",
            Self::BadValue => "bad_value",
            Self::Internal => "internal_error",
        }
    }

    /// The limit whose hit this refusal is, if any.
    pub fn limit(self) -> Option<Limit> {
        match self {
            Self::AppLimit => Some(Limit::Apps),
            Self::SeriesLimit => Some(Limit::Series),
            Self::SeriesTotalLimit => Some(Limit::SeriesTotal),
            _ => None,
        }
    }
}

/// Why a valid line carries nothing stackd keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// A metric no input knows.
    UnknownMetric,
    /// statsd-jvm-profiler's shutdown depth marker (`cpu.trace.<integer>`).
    DepthMarker,
    /// A Flink StatsD name that cannot be split exactly into its scope and metric (task and
    /// operator metrics); the InfluxDB reporter carries them exactly.
    AmbiguousName,
}

impl Ignored {
    /// Every value, for the counters' series present at 0 from the start.
    pub const ALL: [Self; 3] = [Self::UnknownMetric, Self::DepthMarker, Self::AmbiguousName];

    /// Bounded label value of `stackd_lines_ignored_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::UnknownMetric => "unknown_metric",
            Self::DepthMarker => "depth_marker",
            Self::AmbiguousName => "ambiguous_name",
        }
    }
}

/// A configured limit, as counted in `stackd_limit_hits_total{limit}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `--max-apps`: the sample is refused.
    Apps,
    /// `--max-stacks-per-app`: the sample is counted under the overflow frame.
    Stacks,
    /// `--max-label-values`: the sample is kept under the overflow label value.
    LabelValues,
    /// `--max-series-per-app`: the gauge is refused.
    Series,
    /// `--max-body-size`: the request is refused.
    Body,
    /// `--http-max-connections`: a connection is closed.
    Connections,
    /// `--http-header-timeout`: the connection is closed.
    HeaderTimeout,
    /// `--http-idle-timeout`: the connection is closed.
    IdleTimeout,
    /// `--max-concurrent-renders`: the request waited too long for a render slot.
    Renders,
    /// `--max-concurrent-imports`: the import waited too long for a slot.
    Imports,
    /// `--max-series`: an engine series or gauge beyond the total of all apps is refused.
    SeriesTotal,
    /// `--max-name-length`: an app name or label value cut to the limit.
    NameLength,
    /// `--max-frame-length`: a frame cut to the limit (counted once per stack).
    FrameLength,
    /// `--max-stack-depth`: a stack's frames beyond the limit replaced by one marker frame
    /// (counted once per stack).
    StackDepth,
    /// `/query`: statements beyond the most one request may hold, or databases beyond the most
    /// kept; refused.
    Query,
    /// A flame graph's frames or bytes beyond `--max-render-frames`: the narrowest frames are
    /// left out, and the subtitle says so.
    RenderOutput,
    /// A Pyroscope profile with more samples, locations, functions or strings than stackd
    /// decodes in one profile: the request is refused (413).
    ProfileSize,
}

impl Limit {
    /// Every value, for the counters' series present at 0 from the start.
    pub const ALL: [Self; 17] = [
        Self::Apps,
        Self::Stacks,
        Self::LabelValues,
        Self::Series,
        Self::Body,
        Self::Connections,
        Self::HeaderTimeout,
        Self::IdleTimeout,
        Self::Renders,
        Self::Imports,
        Self::SeriesTotal,
        Self::NameLength,
        Self::FrameLength,
        Self::StackDepth,
        Self::Query,
        Self::RenderOutput,
        Self::ProfileSize,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Apps => "apps",
            Self::Stacks => "stacks",
            Self::LabelValues => "label_values",
            Self::Series => "series",
            Self::Body => "body",
            Self::Connections => "connections",
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::Renders => "renders",
            Self::Imports => "imports",
            Self::SeriesTotal => "series_total",
            Self::NameLength => "name_length",
            Self::FrameLength => "frame_length",
            Self::StackDepth => "stack_depth",
            Self::Query => "query",
            Self::RenderOutput => "render_output",
            Self::ProfileSize => "profile_size",
        }
    }
}

/// Why an HTTP request was refused before its lines were read (or its answer computed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestReject {
    TooLarge,
    BadGzip,
    UnsupportedEncoding,
    BodyTimeout,
    BodyReadError,
    Unauthorized,
    RenderBusy,
    TlsHandshake,
    /// The store could not be read, so the answer would have been incomplete.
    StoreUnreadable,
    /// An imported profile (`/import/flink`, `/import/folded`) was malformed or inconsistent;
    /// nothing of it was stored.
    BadDocument,
    /// `--max-concurrent-imports`: no import slot within the request timeout.
    ImportBusy,
    /// `/query` with more statements than one request may hold.
    QueryTooLong,
}

impl RequestReject {
    /// Every value, for the counters' series present at 0 from the start.
    pub const ALL: [Self; 12] = [
        Self::TooLarge,
        Self::BadGzip,
        Self::UnsupportedEncoding,
        Self::BodyTimeout,
        Self::BodyReadError,
        Self::Unauthorized,
        Self::RenderBusy,
        Self::TlsHandshake,
        Self::StoreUnreadable,
        Self::BadDocument,
        Self::ImportBusy,
        Self::QueryTooLong,
    ];

    /// Bounded label value of `stackd_requests_rejected_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::BadGzip => "bad_gzip",
            Self::UnsupportedEncoding => "unsupported_encoding",
            Self::BodyTimeout => "body_timeout",
            Self::BodyReadError => "body_read_error",
            Self::Unauthorized => "unauthorized",
            Self::RenderBusy => "render_busy",
            Self::TlsHandshake => "tls_handshake",
            Self::StoreUnreadable => "store_unreadable",
            Self::BadDocument => "bad_document",
            Self::ImportBusy => "import_busy",
            Self::QueryTooLong => "query_too_long",
        }
    }
}

/// What became of one line (or one sample of a statsd line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Ignored(Ignored),
    Rejected(Reject),
}

impl From<Result<(), Reject>> for Outcome {
    fn from(r: Result<(), Reject>) -> Self {
        r.map_or_else(Outcome::Rejected, |()| Outcome::Accepted)
    }
}
