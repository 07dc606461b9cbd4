//! Engine benchmark: replays 1,000,000 deterministic, realistic kernel lines (about 0.1%
//! of them problems) through the shipped kernel rule set (config/kernel-monitor.json) and
//! reports the CPU time per line (getrusage RUSAGE_THREAD, user + system) over several
//! runs. Checks that every planted problem produced a status and no chatter line did.
//!
//! Run: `cargo bench --bench engine` (optional args: number of lines, number of runs;
//! `NPD_BENCH_CONFIG=<file>` benches another rule set without the planted-problem check).

use std::path::Path;

use jiff::Timestamp;
use npd::config::load_monitor_config;
use npd::engine::{Monitor, ProblemMetrics};
use npd::types::LogLine;

/// Ordinary kernel chatter. `{n}` is replaced by a number, `{h}` by a hex string.
const CHATTER: &[&str] = &[
    "usb 1-{n}: new high-speed USB device number {n} using xhci_hcd",
    "usb 1-{n}: New USB device found, idVendor=0781, idProduct=5583, bcdDevice= 1.00",
    "usb 2-{n}: USB disconnect, device number {n}",
    "audit: type=1400 audit(1700000{n}.{n}:{n}): apparmor=\"DENIED\" operation=\"open\" class=\"file\" profile=\"snap.lxd.daemon\" name=\"/proc/{n}/mountinfo\" pid={n} comm=\"lxd\" requested_mask=\"r\" denied_mask=\"r\" fsuid=0 ouid=0",
    "audit: type=1326 audit(1700000{n}.{n}:{n}): auid=4294967295 uid=0 gid=0 ses=4294967295 subj=unconfined pid={n} comm=\"runc\" exe=\"/usr/bin/runc\" sig=0 arch=c000003e syscall=435 compat=0 ip=0x55d{h} code=0x50000",
    "audit: type=1300 audit(1700000{n}.{n}:{n}): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=7ffd{h} a2=0 a3=0 items=1 ppid={n} pid={n} auid=4294967295 uid=0 gid=0 euid=0 comm=\"kubelet\" exe=\"/usr/bin/kubelet\" key=(null)",
    "kauditd_printk_skb: {n} callbacks suppressed",
    "[UFW BLOCK] IN=eth0 OUT= MAC=42:01:0a:80:00:01:42:01:0a:80:00:02:08:00 SRC=10.0.{n}.{n} DST=10.128.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID={n} DF PROTO=TCP SPT={n} DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0",
    "IPTables-Dropped: IN=cni0 OUT=eth0 PHYSIN=veth{h} SRC=10.244.{n}.{n} DST=10.96.0.10 LEN=76 TOS=0x00 PREC=0x00 TTL=63 ID={n} PROTO=UDP SPT={n} DPT=53 LEN=56",
    "IPVS: rr: TCP 10.96.0.1:443 - no destination available",
    "systemd-journald[{n}]: Data hash table of /var/log/journal/{h}/system.journal has a fill level at 75.0 ({n} of {n} items, {n} file size, 392 bytes per hash table item), suggesting rotation.",
    "systemd-journald[{n}]: /var/log/journal/{h}/system.journal: Journal header limits reached or header out-of-date, rotating.",
    "systemd[1]: Started session-{n}.scope - Session {n} of User root.",
    "e1000e 0000:00:1f.6 eth0: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: None",
    "igb 0000:01:00.{n} eno{n}: igb: eno{n} NIC Link is Down",
    "IPv6: ADDRCONF(NETDEV_CHANGE): cali{h}: link becomes ready",
    "eth0: renamed from tmp{n}",
    "cni0: port {n}(veth{h}) entered blocking state",
    "cni0: port {n}(veth{h}) entered forwarding state",
    "docker0: port {n}(veth{h}) entered disabled state",
    "device veth{h} entered promiscuous mode",
    "device veth{h} left promiscuous mode",
    "EXT4-fs (sda{n}): mounted filesystem with ordered data mode. Opts: (null). Quota mode: none.",
    "EXT4-fs (nvme0n1p{n}): re-mounted {h}-0000-4a8e-9c1e-1234567890ab r/w. Quota mode: none.",
    "overlayfs: fs on '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/{n}/fs' does not support file handles, falling back to xino=off.",
    "nvme nvme0: {n}/0/0 default/read/poll queues",
    "sd 2:0:0:0: [sdb] {n} 512-byte logical blocks: ({n} GB/{n} GiB)",
    "scsi 2:0:0:0: Direct-Access     Google   PersistentDisk   1    PQ: 0 ANSI: 6",
    "pci 0000:00:{n}.0: [8086:1237] type 00 class 0x060000",
    "TCP: request_sock_TCP: Possible SYN flooding on port {n}. Sending cookies.  Check SNMP counters.",
    "loop{n}: detected capacity change from 0 to {n}",
    "perf: interrupt took too long ({n} > 2500), lowering kernel.perf_event_max_sample_rate to {n}",
    "IPv4: martian source 10.0.{n}.1 from 10.0.{n}.2, on dev eth0",
    "xt_addrtype: ipv6 does not support BROADCAST matching",
    "Bluetooth: hci0: Firmware revision 0.{n} build {n} week {n} 2021",
    "nf_conntrack: default automatic helper assignment has been turned off for security reasons and CT-based firewall rule not found. Use the iptables CT target to attach helpers instead.",
    "br-{h}: port {n}(veth{h}) entered blocking state",
    "Initializing XFRM netlink socket",
    "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  535.129.03  Thu Oct 19 18:56:32 UTC 2023",
    "XFS (sdb{n}): Ending clean mount",
    "wireguard: WireGuard 1.0.0 loaded. See www.wireguard.com for information.",
];

/// Problems: each must make the monitor return a status.
const PROBLEMS: &[&str] = &[
    "Out of memory: Killed process {n} (stress) total-vm:{n}kB, anon-rss:{n}kB, file-rss:{n}kB, shmem-rss:0kB, UID:0 pgtables:{n}kB oom_score_adj:0",
    "Memory cgroup out of memory: Killed process {n} (python3) total-vm:{n}kB, anon-rss:{n}kB, file-rss:{n}kB, shmem-rss:0kB, UID:1000 pgtables:{n}kB oom_score_adj:999",
    "INFO: task kworker/u16:{n}:{n} blocked for more than 120 seconds.",
    "unregister_netdevice: waiting for vxlan.calico to become free. Usage count = -1",
    "BUG: kernel NULL pointer dereference, address: 00000000000000{n}",
    "Oops: divide error: 0000 [#1] PREEMPT SMP NOPTI",
    "watchdog: BUG: soft lockup - CPU#{n} stuck for 22s! [kworker/3:1:{n}]",
    "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
    "EXT4-fs error (device sda1): ext4_find_entry:1455: inode #{n}: comm ls: reading directory lblock 0",
    "Buffer I/O error on dev sdb1, logical block {n}, async page read",
    "XFS (sdb1): Filesystem has been shut down due to log error (0x2).",
    "nfs: server 10.0.0.5 not responding, still trying",
    "nf_conntrack: nf_conntrack: table full, dropping packet",
    "NVRM: Xid (PCI:0000:3b:00): 13, pid={n}, name=python, Graphics SM Warp Exception on (GPC 0, TPC 0, SM 0): Out Of Range Address",
    "NVRM: Xid (PCI:0000:3b:00): 79, pid={n}, name=python, GPU has fallen off the bus.",
    "mce: [Hardware Error]: Machine check events logged",
    "{1}[Hardware Error]: event severity: corrected",
];

fn render(rng: &mut fastrand::Rng, template: &str, out: &mut String) {
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{n}") {
            out.push_str(&rng.u32(0..100_000).to_string());
            rest = t;
        } else if let Some(t) = tail.strip_prefix("{h}") {
            out.push_str(&format!("{:08x}", rng.u32(..)));
            rest = t;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
}

/// All lines in one string (offsets in `spans`), and which lines are problems.
struct Corpus {
    text: String,
    spans: Vec<(usize, usize)>,
    problem: Vec<bool>,
}

fn generate(n: usize) -> Corpus {
    let mut rng = fastrand::Rng::with_seed(0x6e70_6421);
    let mut text = String::with_capacity(n * 110);
    let mut spans = Vec::with_capacity(n);
    let mut problem = Vec::with_capacity(n);
    for _ in 0..n {
        let start = text.len();
        let is_problem = rng.u32(0..1000) == 0;
        let pool = if is_problem { PROBLEMS } else { CHATTER };
        let template = pool[rng.usize(0..pool.len())];
        render(&mut rng, template, &mut text);
        spans.push((start, text.len()));
        problem.push(is_problem);
    }
    Corpus {
        text,
        spans,
        problem,
    }
}

/// CPU time (user + system) of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage struct into the valid pointer we pass.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage failed");
    // SAFETY: zero-initialised and filled in by a successful getrusage.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(7);

    // NPD_BENCH_CONFIG=<file> measures another rule set (for example upstream's
    // kernel-monitor.json) on the same lines; its rules need not catch every planted
    // problem, so only ours is checked for that.
    let other = std::env::var_os("NPD_BENCH_CONFIG");
    let path = match &other {
        Some(p) => std::path::PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kernel-monitor.json"),
    };
    let cfg = load_monitor_config(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .config;
    println!("rules: {}", path.display());
    let corpus = generate(n);
    let planted = corpus.problem.iter().filter(|p| **p).count();
    let bytes = corpus.text.len();
    println!(
        "engine bench: {n} lines ({} bytes, {:.1} avg), {planted} planted problems, {} rules, {runs} runs",
        bytes,
        bytes as f64 / n as f64,
        cfg.rules.len()
    );

    let base = Timestamp::from_second(1_700_000_000).expect("valid timestamp");
    let mut per_line = Vec::with_capacity(runs);
    for run in 0..runs {
        let mut monitor = Monitor::new(&cfg, base).expect("kernel-monitor.json compiles");
        let mut metrics = ProblemMetrics::default();
        monitor.init_metrics(&mut metrics);
        let mut line = LogLine::new(base, String::with_capacity(512));
        let mut counted = 0usize;
        let mut wrong = 0usize;
        let t0 = thread_cpu_ns();
        for (i, &(s, e)) in corpus.spans.iter().enumerate() {
            line.message.clear();
            line.message.push_str(&corpus.text[s..e]);
            let fired = !monitor.process(&line, &mut metrics).is_empty();
            if fired {
                counted += 1;
            }
            if fired != corpus.problem[i] {
                wrong += 1;
            }
        }
        let ns = thread_cpu_ns() - t0;
        let ns_per_line = ns as f64 / n as f64;
        println!(
            "run {run}: {:.3} s CPU, {ns_per_line:.1} ns/line, {counted} problems counted",
            ns as f64 / 1e9
        );
        if other.is_some() {
            per_line.push(ns_per_line);
            continue;
        }
        assert_eq!(
            wrong, 0,
            "{wrong} lines where a status appeared for chatter or none for a problem"
        );
        assert_eq!(counted, planted, "not every planted problem was counted");
        per_line.push(ns_per_line);
    }
    per_line.sort_by(f64::total_cmp);
    let median = per_line[per_line.len() / 2];
    println!(
        "median: {median:.1} ns/line CPU ({:.2} us; target <= 1 us), min {:.1}, max {:.1}",
        median / 1000.0,
        per_line[0],
        per_line[per_line.len() - 1]
    );
}
