//! The serial link itself: a real board's serial port, or the firmware ELF booted in QEMU
//! (`mps2-an386`) with its UART on a loopback TCP socket; requests framed and sent, replies
//! read back, every wait bounded.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use shared::protocol::{
    self, CostUnit, Deframer, ErrorCode, MAX_FRAME, PROTOCOL_VERSION, Request, Response,
};

/// Default bound on any single wait for the device.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long QEMU gets to start and connect to the loopback socket.
const QEMU_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// [`shared::protocol::Info`], owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Protocol version of the firmware.
    pub protocol_version: u16,
    /// Firmware crate version.
    pub firmware_version: String,
    /// Board the firmware was built for.
    pub board: String,
    /// Model id of the embedded blob.
    pub model_id: u64,
    /// Embedded blob size, bytes.
    pub blob_len: u32,
    /// Static arena size, bytes.
    pub arena_len: u32,
    /// Input `[h, w, c]`.
    pub input_dims: [u16; 3],
    /// Logits per result.
    pub num_classes: u16,
    /// Unit of [`DeviceResult::cost`].
    pub cost_unit: CostUnit,
    /// Stack reserved, bytes.
    pub stack_size: u32,
    /// Deepest stack use since boot, bytes.
    pub stack_hwm: u32,
}

impl DeviceInfo {
    /// Pixel bytes per image.
    pub fn input_len(&self) -> usize {
        self.input_dims.iter().map(|&d| d as usize).product()
    }
}

/// [`shared::protocol::Classification`], owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceResult {
    /// Sequence number of the request.
    pub seq: u16,
    /// Predicted class.
    pub class: u8,
    /// Quantised logits.
    pub logits: Vec<i8>,
    /// Inference cost in [`DeviceInfo::cost_unit`].
    pub cost: u32,
}

/// Any response, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer to hello.
    Info(DeviceInfo),
    /// Answer to classify.
    Result(DeviceResult),
    /// Refused request (or refused model).
    Error {
        /// Code.
        code: ErrorCode,
        /// Detail text.
        detail: String,
    },
    /// The device panicked or faulted and stopped.
    Fault(String),
    /// Answer to a part of an image: bytes of it held so far.
    Stored(u32),
}

impl From<Response<'_>> for Reply {
    fn from(r: Response<'_>) -> Self {
        match r {
            Response::Info(i) => Reply::Info(DeviceInfo {
                protocol_version: i.protocol_version,
                firmware_version: i.firmware_version.to_owned(),
                board: i.board.to_owned(),
                model_id: i.model_id,
                blob_len: i.blob_len,
                arena_len: i.arena_len,
                input_dims: i.input_dims,
                num_classes: i.num_classes,
                cost_unit: i.cost_unit,
                stack_size: i.stack_size,
                stack_hwm: i.stack_hwm,
            }),
            Response::Result(c) => Reply::Result(DeviceResult {
                seq: c.seq,
                class: c.class,
                logits: c.logits.to_vec(),
                cost: c.cost,
            }),
            Response::Error(e) => Reply::Error {
                code: e.code,
                detail: explain_refusal(e.detail),
            },
            Response::Fault(s) => Reply::Fault(s.to_owned()),
            Response::Stored(n) => Reply::Stored(n),
        }
    }
}

/// A refusal detail with the blob error's text added: the firmware names a blob error by its
/// code only (`shared::error::REFUSAL_PREFIX`, `shared::Error::code`).
fn explain_refusal(detail: &str) -> String {
    let summary = detail
        .strip_prefix(shared::error::REFUSAL_PREFIX)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|code| code.parse().ok())
        .and_then(shared::Error::summary_of_code);
    match summary {
        Some(s) => format!("{detail} ({s})"),
        None => detail.to_owned(),
    }
}

enum Transport {
    Tcp(TcpStream),
    Tty(File),
}

/// A connection to one device.
pub struct DeviceLink {
    transport: Transport,
    rx: Box<Deframer<MAX_FRAME>>,
    timeout: Duration,
    seq: u16,
    qemu: Option<Qemu>,
    name: String,
    /// Received bytes not yet deframed (what followed the last frame in its read).
    pending: std::collections::VecDeque<u8>,
}

impl std::fmt::Debug for DeviceLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceLink")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A QEMU child process, killed on drop; its stderr (semihosting log) is collected.
struct Qemu {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start QEMU; [`QemuOptions::default`] is what CI uses.
#[derive(Debug, Clone)]
pub struct QemuOptions {
    /// The emulator binary.
    pub program: PathBuf,
    /// `-icount shift=0,sleep=off` (deterministic: one instruction per virtual ns), on by default.
    pub icount: bool,
}

impl Default for QemuOptions {
    fn default() -> Self {
        Self {
            program: PathBuf::from("qemu-system-arm"),
            icount: true,
        }
    }
}

/// The QEMU machine for a firmware ELF: `mps2-an385` (Cortex-M3) when the ELF names that
/// board (its `Info` board string), else `mps2-an386`.
fn qemu_machine(elf: &Path) -> Result<&'static str> {
    let bytes = std::fs::read(elf).with_context(|| format!("while reading {}", elf.display()))?;
    let m3 = bytes.windows(10).any(|w| w == b"mps2-an385");
    Ok(if m3 { "mps2-an385" } else { "mps2-an386" })
}

impl DeviceLink {
    /// Boots `elf` (an `mps2-an386` firmware build, or an `mps2-an385` one: the board is read from
    /// the ELF) in QEMU, its UART0 connected to a socket on 127.0.0.1, and connects.
    pub fn qemu(elf: &Path) -> Result<Self> {
        Self::qemu_with(elf, &QemuOptions::default())
    }

    /// [`DeviceLink::qemu`] with options.
    pub fn qemu_with(elf: &Path, options: &QemuOptions) -> Result<Self> {
        ensure!(
            elf.is_file(),
            "firmware ELF {} not found (build it: cd firmware && cargo build --release)",
            elf.display()
        );
        // We listen, QEMU connects as a client: no port race. Loopback only.
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .context("while opening a loopback port for QEMU's UART")?;
        let port = listener.local_addr()?.port();
        let machine = qemu_machine(elf)?;
        let mut cmd = Command::new(&options.program);
        cmd.args([
            "-M",
            machine,
            "-display",
            "none",
            "-monitor",
            "none",
            "-nodefaults",
        ])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-chardev")
        .arg(format!(
            "socket,id=uart0,host=127.0.0.1,port={port},nodelay=on"
        ))
        .args(["-serial", "chardev:uart0", "-kernel"])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        if options.icount {
            cmd.args(["-icount", "shift=0,sleep=off"]);
        }
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "while starting {} (apt-get install qemu-system-arm)",
                options.program.display()
            )
        })?;
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            collect(out, Arc::clone(&log));
        }
        if let Some(err) = child.stderr.take() {
            collect(err, Arc::clone(&log));
        }
        let mut qemu = Qemu { child, log };
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + QEMU_CONNECT_TIMEOUT;
        let stream = loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    ensure!(peer.ip().is_loopback(), "unexpected peer {peer}");
                    break stream;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if let Some(status) = qemu.child.try_wait()? {
                        bail!(
                            "QEMU exited with {status} before connecting: {}",
                            qemu.log.lock().unwrap()
                        );
                    }
                    ensure!(
                        Instant::now() < deadline,
                        "QEMU did not connect within {QEMU_CONNECT_TIMEOUT:?}"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e).context("while waiting for QEMU to connect"),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
        let name = format!("QEMU {machine} running {}", elf.display());
        Ok(Self::new(Transport::Tcp(stream), Some(qemu), name))
    }

    /// Opens a board's serial port (e.g. `/dev/ttyACM0`) at `baud`, raw 8N1, configured with
    /// `stty` (reads time out after 0.1 s so every wait stays bounded).
    pub fn serial(path: &Path, baud: u32) -> Result<Self> {
        let status = Command::new("stty")
            .arg("-F")
            .arg(path)
            .args([
                &baud.to_string(),
                "raw",
                "-echo",
                "-ixon",
                "-ixoff",
                "-crtscts",
                "cs8",
                "-cstopb",
                "-parenb",
                "min",
                "0",
                "time",
                "1",
            ])
            .status()
            .with_context(|| format!("while running stty on {}", path.display()))?;
        ensure!(
            status.success(),
            "stty could not configure {} ({status}); is it a serial port you may open?",
            path.display()
        );
        let file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("while opening {}", path.display()))?;
        let mut link = Self::new(
            Transport::Tty(file),
            None,
            format!("serial port {}", path.display()),
        );
        // A previous host may have died mid-frame: a lone delimiter ends that frame on the
        // device (answered with an error, or ignored if empty), and the answer is drained.
        link.write_all(&[0])?;
        link.flush_input()?;
        Ok(link)
    }

    fn new(transport: Transport, qemu: Option<Qemu>, name: String) -> Self {
        Self {
            transport,
            rx: Box::new(Deframer::new()),
            timeout: DEFAULT_TIMEOUT,
            seq: 0,
            qemu,
            name,
            pending: std::collections::VecDeque::new(),
        }
    }

    /// Bound on every wait for a response (default [`DEFAULT_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// What this link talks to, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// QEMU's stderr so far (semihosting output), if this is a QEMU link.
    pub fn emulator_log(&self) -> Option<String> {
        self.qemu.as_ref().map(|q| q.log.lock().unwrap().clone())
    }

    /// Sends hello; returns the device information (fails if the device refused its model).
    pub fn info(&mut self) -> Result<DeviceInfo> {
        match self.request(&Request::Hello)? {
            Reply::Info(info) => {
                ensure!(
                    info.protocol_version == PROTOCOL_VERSION,
                    "device speaks protocol {}, this host {PROTOCOL_VERSION}",
                    info.protocol_version
                );
                Ok(info)
            }
            other => Err(self.unexpected(other, "info")),
        }
    }

    /// Classifies one image (raw pixels, [`DeviceInfo::input_len`] bytes): in one frame, or,
    /// when too large for one, in parts and then a classify request without pixels.
    pub fn classify(&mut self, pixels: &[u8]) -> Result<DeviceResult> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let in_one = protocol::fits_one_frame(pixels.len());
        if !in_one {
            self.send_parts(pixels)?;
        }
        let pixels = if in_one { pixels } else { &[] };
        match self.request(&Request::Classify { seq, pixels })? {
            Reply::Result(r) if r.seq == seq => Ok(r),
            Reply::Result(r) => bail!(
                "{}: answer for request {} while waiting for {seq}",
                self.name,
                r.seq
            ),
            other => Err(self.unexpected(other, "a result")),
        }
    }

    /// Sends `pixels` as [`Request::Part`]s, each acknowledged with the bytes held so far.
    fn send_parts(&mut self, pixels: &[u8]) -> Result<()> {
        for (i, chunk) in pixels.chunks(protocol::PART_PIXELS).enumerate() {
            let offset = i * protocol::PART_PIXELS;
            let held = offset + chunk.len();
            match self.request(&Request::Part {
                offset: offset as u32,
                pixels: chunk,
            })? {
                Reply::Stored(n) if n as usize == held => {}
                other => return Err(self.unexpected(other, "the part stored")),
            }
        }
        Ok(())
    }

    fn unexpected(&self, reply: Reply, wanted: &str) -> anyhow::Error {
        match reply {
            Reply::Error { code, detail } => {
                anyhow!("{} refused the request: {code}: {detail}", self.name)
            }
            Reply::Fault(text) => anyhow!("{} faulted and stopped: {text}", self.name),
            other => anyhow!("{}: expected {wanted}, got {other:?}", self.name),
        }
    }

    /// Encodes `request` as a frame, sends it and waits for one reply.
    pub fn request(&mut self, request: &Request<'_>) -> Result<Reply> {
        let frame = encode_request(request)?;
        self.write_all(&frame)?;
        // A request frame always carries a payload and its CRC, so a `Truncated` refusal answers
        // a fragment that reached the device before it (line noise, a partial frame when the
        // link opened), not this request: its answer is still to come. Bounded, so a device
        // that answers only refusals still fails.
        for _ in 0..4 {
            match self.read_reply()? {
                Reply::Error {
                    code: ErrorCode::Truncated,
                    ..
                } => continue,
                reply => return Ok(reply),
            }
        }
        self.read_reply()
    }

    /// Sends arbitrary bytes (a frame, a corrupted frame, ...) and waits for one reply.
    pub fn exchange_raw(&mut self, bytes: &[u8]) -> Result<Reply> {
        self.write_all(bytes)?;
        self.read_reply()
    }

    /// Waits for the next complete frame, bounded by the timeout.
    pub fn read_reply(&mut self) -> Result<Reply> {
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0u8; 256];
        loop {
            let now = Instant::now();
            if now >= deadline {
                let log = self
                    .emulator_log()
                    .map(|l| format!("; emulator log: {l}"))
                    .unwrap_or_default();
                bail!("{}: no reply within {:?}{log}", self.name, self.timeout);
            }
            // Bytes left over after the previous frame come first.
            if self.pending.is_empty() {
                let n = self.read_some(&mut buf, deadline - now)?;
                self.pending.extend(&buf[..n]);
            }
            // Whatever follows a frame in the same read stays for the next reply.
            while let Some(b) = self.pending.pop_front() {
                if let Some(frame) = self.rx.push(b) {
                    return match frame {
                        Ok(body) => {
                            protocol::decode_response(body)
                                .map(Reply::from)
                                .map_err(|code| {
                                    anyhow!("{}: unreadable reply frame: {code}", self.name)
                                })
                        }
                        Err(code) => Err(anyhow!("{}: reply frame: {code}", self.name)),
                    };
                }
            }
        }
    }

    fn read_some(&mut self, buf: &mut [u8], left: Duration) -> Result<usize> {
        let r = match &mut self.transport {
            Transport::Tcp(s) => {
                s.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
                s.read(buf)
            }
            Transport::Tty(f) => f.read(buf), // VTIME bounds this to 0.1 s
        };
        match r {
            Ok(0) if matches!(self.transport, Transport::Tcp(_)) => {
                let log = self.emulator_log().unwrap_or_default();
                bail!("{}: connection closed (device stopped?) {log}", self.name)
            }
            Ok(n) => Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(e).with_context(|| format!("while reading from {}", self.name)),
        }
    }

    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let r = match &mut self.transport {
            Transport::Tcp(s) => {
                s.set_write_timeout(Some(self.timeout))?;
                s.write_all(bytes).and_then(|()| s.flush())
            }
            Transport::Tty(f) => f.write_all(bytes).and_then(|()| f.flush()),
        };
        r.with_context(|| format!("while writing to {}", self.name))
    }

    /// Drops pending input and resets the receiver (a lone `0x00` also ends any half-received
    /// frame on the device, which then answers it with an error we discard).
    pub fn flush_input(&mut self) -> Result<()> {
        *self.rx = Deframer::new();
        let mut buf = [0u8; 256];
        let end = Instant::now() + Duration::from_millis(200);
        while Instant::now() < end {
            if self.read_some(&mut buf, Duration::from_millis(50))? == 0 {
                break;
            }
        }
        Ok(())
    }
}

/// Appends everything `stream` produces to `log`, on a thread (QEMU's console output).
fn collect(mut stream: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            log.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

/// Opens the link the CLI asked for: `qemu` (a firmware ELF to boot) or `port` (a board's serial
/// port at `baud`), exactly one of them.
pub fn connect(
    qemu: Option<&Path>,
    port: Option<&Path>,
    baud: u32,
    timeout: Duration,
) -> Result<DeviceLink> {
    let mut link = match (qemu, port) {
        (Some(elf), None) => DeviceLink::qemu(elf)?,
        (None, Some(tty)) => DeviceLink::serial(tty, baud)?,
        _ => bail!("give exactly one of --qemu ELF or --port TTY"),
    };
    link.set_timeout(timeout);
    Ok(link)
}

/// Encodes a request as a complete frame.
pub fn encode_request(request: &Request<'_>) -> Result<Vec<u8>> {
    let mut scratch = vec![0u8; MAX_FRAME];
    let mut out = vec![0u8; MAX_FRAME + 1];
    let n = protocol::encode_frame(request, &mut scratch, &mut out)
        .map_err(|code| anyhow!("request does not fit a frame: {code}"))?;
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_error_code_gets_its_text() {
        let e = shared::Error::BadLayerWeights(4);
        let detail = format!("{}{} at layer 4", shared::error::REFUSAL_PREFIX, e.code());
        assert_eq!(
            explain_refusal(&detail),
            format!("{detail} ({})", e.summary())
        );
        assert_eq!(explain_refusal("model needs 9 B"), "model needs 9 B");
        let unknown = format!("{}99", shared::error::REFUSAL_PREFIX);
        assert_eq!(explain_refusal(&unknown), unknown);
    }

    #[test]
    fn a_truncated_refusal_before_the_answer_is_skipped() {
        // A fake device: reads one request frame, then answers a stray fragment's refusal
        // followed by the real answer.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut b = [0u8; 1];
            while s.read_exact(&mut b).is_ok() && b[0] != 0 {}
            let (mut scratch, mut out) = ([0u8; 512], [0u8; 512]);
            let refusal = protocol::Response::Error(protocol::ErrorReport {
                code: ErrorCode::Truncated,
                detail: "",
            });
            let info = protocol::Response::Info(protocol::Info {
                protocol_version: PROTOCOL_VERSION,
                firmware_version: "0",
                board: "fake",
                model_id: 7,
                blob_len: 1,
                arena_len: 1,
                input_dims: [28, 28, 1],
                num_classes: 10,
                cost_unit: CostUnit::Instructions,
                stack_size: 1,
                stack_hwm: 1,
            });
            for r in [refusal, info] {
                let n = protocol::encode_response(&r, &mut scratch, &mut out);
                s.write_all(&out[..n]).unwrap();
            }
        });
        let stream = TcpStream::connect(addr).unwrap();
        let mut link = DeviceLink::new(Transport::Tcp(stream), None, "fake".into());
        link.set_timeout(Duration::from_secs(10));
        let info = link.info().unwrap();
        assert_eq!(info.model_id, 7);
        fake.join().unwrap();
    }
}
