//! The capture inspector, `metaproxy inspect`: decodes what a TCP connection carried and prints
//! every message, one JSON object per line (or a table for people), optionally with where the
//! proxy would route each request.
//!
//! Input, told apart by magic number:
//!
//! * pcap and pcapng files, as `tcpdump -w`, `dumpcap` and `tshark -w` write them ([`pcap`]):
//!   packets become TCP segments ([`packet`]), each connection's two directions are reassembled
//!   ([`tcp`]: out-of-order segments, retransmissions, holes), each direction is decoded with the
//!   codec ([`stream`]: resynchronising at the next frame after a hole or a mid-stream start), and
//!   responses are paired with requests ([`pairing`]) for latencies. The codec is `--protocol`,
//!   or guessed per connection ([`guess`]). See [`capture`].
//! * anything else: the raw bytes of one direction of a stream, as `inspect` has always read them
//!   (decoding stops at the first error; a file ending inside a message is an error).
//!
//! With `--config` every request on a connection to a listener gets the routing decision the proxy
//! would make, from the same compiled route tables ([`dryrun`]), and the summary counts requests
//! per route and destination. Output: [`output`] (JSON lines) or [`table`].
//!
//! The codec's type is erased for the inspector through [`Protocol::inspect`], which calls
//! [`inspect_stream`] ([`codec`] explains how).

pub mod capture;
pub mod codec;
pub mod dryrun;
pub mod guess;
pub mod output;
pub mod packet;
pub mod pairing;
pub mod pcap;
pub mod session;
pub mod stream;
pub mod table;
pub mod tcp;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use metaprotocol_core::{Codec, ConfigValue};

use self::capture::{CaptureFile, Codecs};
use self::codec::StreamCodec;
use self::dryrun::{DryRun, Leg};
use self::guess::{candidates, Candidate};
use self::output::{JsonReport, Place, Report};
use self::pcap::FileKind;
pub use self::pcap::ReadError;
use self::session::{Session, StreamAt};
use self::stream::{StreamDecoder, StreamEvent};
use self::table::TableReport;
use crate::plan::{Protocol, Summary};
use crate::registry::Registry;
use crate::RuntimeError;

/// How `inspect` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per message or event, then a summary (for scripts).
    #[default]
    Json,
    /// One aligned line per request and its answer, then the totals (for people).
    Table,
}

/// The arguments of `metaproxy inspect`.
#[derive(Clone, Debug, clap::Args)]
pub struct InspectArgs {
    /// The codec to decode with (a registered protocol name). Default: the protocol of the
    /// listener or cluster a connection goes to (`--config`), else the one whose well-known port
    /// the server uses (dubbo 20880, thrift 9090), else each registered codec in turn.
    #[arg(long, short = 'p')]
    pub protocol: Option<String>,
    /// Codec options (for `--protocol`), as they would appear under `codec:` in the
    /// configuration: JSON text, or the path of a YAML or JSON file.
    #[arg(long, value_name = "JSON|FILE")]
    pub codec_options: Option<String>,
    /// Routing dry run: the proxy configuration whose routes each request would take (nothing is
    /// sent). A connection's listener is the one on its server port.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// With `--config`: route every request through this listener instead of by port (and raw
    /// files, when the configuration has several listeners).
    #[arg(long, value_name = "NAME", requires = "config")]
    pub listener: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Capture files: pcap or pcapng (`tcpdump -w`, `dumpcap`, `tshark -w`), or the raw bytes of
    /// one direction of a stream.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Reads `--codec-options`: a YAML or JSON file when `arg` names one, else JSON text.
pub fn codec_options(arg: Option<&str>) -> Result<ConfigValue, RuntimeError> {
    let Some(arg) = arg else { return Ok(ConfigValue::Null) };
    let path = Path::new(arg);
    if !path.is_file() {
        return serde_json::from_str(arg).map_err(RuntimeError::CodecOptions);
    }
    let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Io { path: path.to_path_buf(), source })?;
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        return serde_json::from_str(&text)
            .map_err(|source| RuntimeError::CodecOptionsJson { path: path.to_path_buf(), source });
    }
    serde_saphyr::from_str(&text)
        .map_err(|e| RuntimeError::CodecOptionsFile { path: path.to_path_buf(), source: Box::new(e) })
}

/// Everything one command needs besides its files.
struct Setup {
    codecs: Codecs,
    dry: Option<DryRun>,
}

fn setup(registry: &Registry, args: &InspectArgs) -> Result<Setup, RuntimeError> {
    let options = codec_options(args.codec_options.as_deref())?;
    let fixed = match &args.protocol {
        Some(name) => {
            let protocol = registry.configure_codec(name, &options)?;
            Some(Candidate { name: name.clone(), codec: <dyn StreamCodec>::of(&*protocol)? })
        }
        None if args.codec_options.is_some() => {
            return Err(RuntimeError::Argument {
                argument: "--codec-options",
                message:
                    "needs --protocol (without it, each connection's codec uses its configured or default options)"
                        .into(),
            })
        }
        None => None,
    };
    let dry = args.config.as_deref().map(|c| DryRun::load(c, registry, args.listener.as_deref())).transpose()?;
    Ok(Setup { codecs: Codecs { fixed, candidates: candidates(registry) }, dry })
}

/// Runs `metaproxy inspect`, writing to `out`. A file that cannot be inspected is reported on
/// stderr and the others are inspected; the exit code then says failure.
pub fn run(registry: &Registry, args: &InspectArgs, out: &mut dyn Write) -> Result<ExitCode, RuntimeError> {
    let Setup { codecs, dry } = setup(registry, args)?;
    let routes = dry.is_some();
    let mut json;
    let mut table;
    let report: &mut dyn Report = match args.format {
        Format::Json => {
            json = JsonReport::new(out);
            &mut json
        }
        Format::Table => {
            table = TableReport::new(out, routes);
            &mut table
        }
    };
    let mut session = Session::new(report, dry);
    let mut raw = RawFiles::default();
    let mut failed = false;
    let mut captures = false;
    for path in &args.files {
        let result = FileKind::sniff(path).and_then(|kind| match kind {
            FileKind::Raw => raw.inspect(
                &mut session,
                &codecs,
                path,
                &std::fs::read(path).map_err(|source| RuntimeError::Io { path: path.to_path_buf(), source })?,
            ),
            kind => {
                captures = true;
                CaptureFile::inspect(&mut session, &codecs, path, &path.display().to_string(), kind)
            }
        });
        match result {
            Ok(()) => {}
            Err(e) if crate::cli::is_broken_pipe(&e) => return Err(e),
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "metaproxy: {e}");
                failed = true;
            }
        }
    }
    session.finish(captures || routes)?;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The raw files of one command: one pseudo-connection (number 0), each file a side, so that a
/// requests file and a responses file given together are paired.
#[derive(Default)]
struct RawFiles {
    index: usize,
}

impl RawFiles {
    fn codec(
        session: &Session<'_>,
        codecs: &Codecs,
        path: &Path,
        data: &[u8],
    ) -> Result<Box<dyn StreamCodec>, RuntimeError> {
        if let Some(f) = &codecs.fixed {
            return Ok(f.codec.fresh());
        }
        if let Some(dry) = &session.dry {
            if let Some(p) = dry.default_listener().and_then(|i| dry.listener_protocol(i)) {
                return <dyn StreamCodec>::of(&**p);
            }
        }
        // The first codec that decodes a message at the start of the file.
        for c in &codecs.candidates {
            let mut probe = c.codec.fresh();
            let mut buf = bytes::BytesMut::from(data);
            if matches!(probe.decode(&mut buf), Ok(Some(_))) {
                return Ok(c.codec.fresh());
            }
        }
        let tried = codecs.candidates.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
        Err(RuntimeError::NoCodec { path: path.to_path_buf(), tried })
    }

    fn inspect(
        &mut self,
        session: &mut Session<'_>,
        codecs: &Codecs,
        path: &Path,
        data: &[u8],
    ) -> Result<(), RuntimeError> {
        let codec = Self::codec(session, codecs, path, data)?;
        let leg = match &session.dry {
            Some(d) => match d.default_listener() {
                Some(i) => Leg::Listener(i),
                None => {
                    return Err(RuntimeError::Argument {
                        argument: "--listener",
                        message: "the configuration has several listeners: name the one this file went to".into(),
                    })
                }
            },
            None => Leg::Unknown,
        };
        session.totals.files += 1;
        let name = path.display().to_string();
        // Paired with the command's other raw files by its index; routed as a client's stream.
        let at = StreamAt {
            place: Place { file: &name, ..Place::default() },
            connection: 0,
            side: self.index,
            from_client: true,
            leg,
        };
        self.index += 1;
        let mut decoder = StreamDecoder::strict(codec);
        let mut events = Vec::new();
        decoder.push(data, &mut events);
        decoder.finish(&mut events);
        for event in events {
            match event {
                StreamEvent::Message { offset, decoded } => session.message(&at, offset, &decoded)?,
                StreamEvent::DecodeError { offset, error } => {
                    session.totals.decode_errors += 1;
                    let at = offset.saturating_add(error.offset().unwrap_or(0) as u64);
                    return Err(RuntimeError::Decode { path: path.to_path_buf(), offset: at, source: error });
                }
                StreamEvent::Incomplete { offset, bytes } => {
                    session.totals.incomplete += 1;
                    let left = usize::try_from(bytes).unwrap_or(usize::MAX);
                    return Err(RuntimeError::Truncated { path: path.to_path_buf(), offset, left });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Decodes `data` (the raw bytes of one direction of a stream, named `name` in the output) with
/// `codec` and writes one JSON line per message to `out`: what [`Protocol::inspect`] does for
/// every registered codec. (Called by the inspector itself to get the codec: see [`codec`].)
///
/// [`Protocol::inspect`]: crate::plan::Protocol::inspect
pub fn inspect_stream<C: Codec>(
    codec: C,
    name: &str,
    data: &[u8],
    out: &mut dyn Write,
) -> Result<Summary, RuntimeError> {
    if codec::offer(&codec) {
        return Ok(Summary::default());
    }
    let mut report = JsonReport::new(out);
    let mut session = Session::new(&mut report, None);
    let fixed = Candidate { name: String::new(), codec: codec::boxed(codec) };
    let codecs = Codecs { fixed: Some(fixed), candidates: Vec::new() };
    RawFiles::default().inspect(&mut session, &codecs, Path::new(name), data)?;
    let totals = session.finish(false)?;
    Ok(Summary { messages: totals.messages, bytes: data.len() as u64 })
}

/// Inspects one file with the configured codec `protocol` (registered as `name`), writing JSON
/// lines to `out` (for a capture, events and the summary too): [`crate::cli::inspect_file`].
pub fn inspect_file(
    registry: &Registry,
    name: &str,
    protocol: &dyn Protocol,
    path: &Path,
    out: &mut dyn Write,
) -> Result<Summary, RuntimeError> {
    let kind = FileKind::sniff(path)?;
    let fixed = Candidate { name: name.to_string(), codec: <dyn StreamCodec>::of(protocol)? };
    let codecs = Codecs { fixed: Some(fixed), candidates: candidates(registry) };
    let mut report = JsonReport::new(out);
    let mut session = Session::new(&mut report, None);
    let io = |source| RuntimeError::Io { path: path.to_path_buf(), source };
    let bytes = match kind {
        FileKind::Raw => {
            let data = std::fs::read(path).map_err(io)?;
            RawFiles::default().inspect(&mut session, &codecs, path, &data)?;
            data.len() as u64
        }
        kind => {
            CaptureFile::inspect(&mut session, &codecs, path, &path.display().to_string(), kind)?;
            std::fs::metadata(path).map_err(io)?.len()
        }
    };
    let totals = session.finish(kind != FileKind::Raw)?;
    Ok(Summary { messages: totals.messages, bytes })
}
