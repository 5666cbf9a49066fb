//! `podnet-pause`: the first process of a pod sandbox.
//!
//! It holds the pod's network, IPC and UTS (and PID) namespaces for as long as the pod lives. As PID 1
//! of the pod's PID namespace it reaps every orphan re-parented to it (with `shareProcessNamespace`
//! that includes the containers' children), and it exits 0 on SIGTERM or SIGINT so a sandbox stops
//! quickly and cleanly.
//!
//! Design: every signal it cares about is blocked and collected synchronously with `rt_sigtimedwait`
//! (which sleeps like `pause()` until one arrives). A blocked signal is never "ignored" by the kernel,
//! so SIGTERM reaches it even as the init of a PID namespace, where signals with a default action
//! are otherwise dropped. No handlers, no allocation, no libc calls: the binary is small and its
//! resident set a handful of pages.
//!
//! Two builds of the same loop:
//! - `scripts/build-pause.sh` (cargo profile `pause`, `panic = "abort"`): `no_std`, `no_main`, its own
//!   `_start`, linked `-nostartfiles -nostdlib -static`: a static executable of a few kilobytes with
//!   no libc at all. This is the binary of the pause image and the one to install on nodes.
//! - any other profile (`panic = "unwind"`, as the workspace's dev and test builds): an ordinary std
//!   `main`, because a `no_std` binary cannot be built with unwinding and cargo sets `panic` per
//!   profile, not per crate. Same system calls, same behaviour; dynamically linked.
#![cfg_attr(panic = "abort", no_std)]
#![cfg_attr(panic = "abort", no_main)]

use core::arch::asm;

const SYS_RT_SIGPROCMASK: usize = 14;
const SYS_WAIT4: usize = 61;
const SYS_RT_SIGTIMEDWAIT: usize = 128;
const SYS_EXIT_GROUP: usize = 231;

const SIG_BLOCK: usize = 0;
const SIGINT: usize = 2;
const SIGTERM: usize = 15;
const SIGCHLD: usize = 17;
const WNOHANG: usize = 1;
const EINTR: isize = -4;

// The kernel enters here with the stack pointer at argc; align it and call into Rust.
#[cfg(panic = "abort")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call podnet_pause_main",
    "ud2",
);

/// # Safety
/// Raw system call; the caller passes arguments valid for `nr`.
unsafe fn syscall4(nr: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: x86_64 Linux system call ABI; rcx and r11 are clobbered by `syscall`.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

fn exit(code: usize) -> ! {
    loop {
        // SAFETY: exit_group takes one integer and does not return.
        unsafe { syscall4(SYS_EXIT_GROUP, code, 0, 0, 0) };
    }
}

const fn bit(sig: usize) -> u64 {
    1 << (sig - 1)
}

/// Reaps every child that has exited; returns when none is left to reap right now.
fn reap() {
    loop {
        // SAFETY: wait4(-1, NULL, WNOHANG, NULL) writes nothing to our memory.
        let pid = unsafe { syscall4(SYS_WAIT4, usize::MAX, 0, WNOHANG, 0) };
        if pid <= 0 && pid != EINTR {
            return;
        }
    }
}

#[cfg(panic = "abort")]
#[unsafe(no_mangle)]
extern "C" fn podnet_pause_main() -> ! {
    run()
}

#[cfg(panic = "abort")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(3)
}

#[cfg(not(panic = "abort"))]
fn main() {
    run()
}

fn run() -> ! {
    let set: u64 = bit(SIGINT) | bit(SIGTERM) | bit(SIGCHLD);
    // SAFETY: `set` outlives the call; the old mask is not requested; 8 is sizeof(kernel sigset_t).
    if unsafe {
        syscall4(
            SYS_RT_SIGPROCMASK,
            SIG_BLOCK,
            &set as *const u64 as usize,
            0,
            8,
        )
    } < 0
    {
        exit(2);
    }
    loop {
        // SAFETY: `set` outlives the call; no siginfo and no timeout are requested.
        let sig = unsafe { syscall4(SYS_RT_SIGTIMEDWAIT, &set as *const u64 as usize, 0, 0, 8) };
        match sig {
            s if s == SIGTERM as isize || s == SIGINT as isize => exit(0),
            // SIGCHLD, or an interruption: reap whatever is there (signals coalesce, so reap all).
            _ => reap(),
        }
    }
}
