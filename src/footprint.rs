//! Keeping the resident footprint small on every node.

/// Turns off the kernel's fault-around for this executable's own file mappings.
///
/// On a page fault in a file mapping Linux maps up to 16 neighbouring pages of the page
/// cache as well ("fault-around"). For a 10 MB binary whose hot code is scattered, that
/// makes most of the text resident although little of it runs: measured here, about
/// 6 MB of the daemon's 10.6 MB RSS were clean executable pages. `MADV_RANDOM` on those
/// mappings disables fault-around, so only pages that actually execute become resident.
/// Best effort: errors are ignored (the worst case is the default behaviour).
pub fn trim_executable_fault_around() {
    for_each_executable_mapping(|start, len| {
        // SAFETY: madvise only changes paging advice for a range that /proc/self/maps
        // says is mapped in this process; it does not touch memory contents. PAGEOUT
        // first: what the loader's faults mapped before main (whole page-cache folios
        // of the binary) goes, then RANDOM keeps later faults to single pages.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT);
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_RANDOM);
        };
    });
}

/// Drops the executable's clean file pages from this process's page tables once
/// start-up is over (config parsing, regex compilation, TLS and client set-up touch a
/// lot of code that never runs again). The pages stay in the page cache; whatever the
/// steady state needs faults back in cheaply. `MADV_PAGEOUT` (Linux 5.4+) never touches
/// anonymous memory here because only file mappings of the executable are passed.
/// Best effort: on older kernels it is a no-op.
pub fn release_startup_pages() {
    for_each_executable_mapping(|start, len| {
        // SAFETY: as above; MADV_PAGEOUT on a clean, file-backed private mapping only
        // unmaps pages that can be re-read from the file.
        unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
    });
}

fn for_each_executable_mapping(mut f: impl FnMut(usize, usize)) {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let exe = exe.to_string_lossy();
    for line in maps.lines() {
        // "start-end perms offset dev inode path"
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        // Read-only mappings only: writable ones hold relocated, dirty data.
        if perms.contains('w') {
            continue;
        }
        let path = parts.nth(3).unwrap_or("");
        if path != exe {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        f(start, end.saturating_sub(start));
    }
}

/// Lines a monitor must have processed since the last trim before going idle triggers
/// another [`release_after_burst`]: a quiet log never trims, so it never wakes for it.
pub const TRIM_AFTER_LINES: u64 = 10_000;

/// How long a monitor must have received nothing before a burst counts as over.
pub const TRIM_WHEN_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// Gives back what a burst of log lines left resident: the code pages only the burst
/// ran (the lookback replay of a large log touches most of the regex engine) and the
/// allocator's free memory. Called once after a burst, never periodically. Measured
/// (README, Performance): idle RSS after the 1M-line benchmark from 8.6 MB to 4.6 MB
/// (together with the smaller rule set).
pub fn release_after_burst() {
    release_startup_pages();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the kernel; it is safe to call
    // at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
