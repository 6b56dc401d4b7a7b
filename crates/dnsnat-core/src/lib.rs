//! dnsnat's pure core.
//!
//! Everything in this crate decides; nothing here performs I/O, reads a clock,
//! spawns a task or knows about Node. Time enters as an argument (`now`) and
//! outputs are values the caller acts on. That is what lets the event loops in
//! `dnsnat-node` stay thin and lets every rule below be tested with a fake clock
//! and a simulated network.

pub mod constants;
pub mod control;
pub mod dns;
pub mod gate;
pub mod nat;
pub mod packet;
pub mod pattern;

#[cfg(test)]
mod fuzz_seeds;
