//! What a process has used so far, from `/proc/<pid>/`: CPU time and memory.

use anyhow::Context as _;

/// CPU time (user + system) the process has used, seconds.
pub fn cpu_seconds(pid: libc::pid_t) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // The fields after the command's closing parenthesis (the command may hold spaces); utime and
    // stime are the 14th and 15th fields of the line, the 12th and 13th after it.
    let after_command = stat.rsplit_once(')').context("no command in /proc/<pid>/stat")?.1;
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        fields.get(index).context("a short /proc/<pid>/stat")?.parse().context("a CPU time field")
    };
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((ticks(11)? + ticks(12)?) as f64 / per_second)
}

/// The process's resident memory now (`VmRSS`) and at its peak (`VmHWM`), MiB.
pub fn memory_mib(pid: libc::pid_t) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
    let kib = |name: &str| -> anyhow::Result<f64> {
        let line = status.lines().find(|line| line.starts_with(name)).with_context(|| format!("no {name}"))?;
        let value = line.split_whitespace().nth(1).with_context(|| format!("an empty {name}"))?;
        Ok(value.parse::<f64>().with_context(|| format!("{name} is not a number"))? / 1024.0)
    };
    Ok((kib("VmRSS:")?, kib("VmHWM:")?))
}
