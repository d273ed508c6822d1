//! Parsing scenario files. Every error names the line and the word that
//! could not be read.

use ownership::PageState;
use share::Errno;

/// A call a scenario can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallName {
    HostShareHyp,
    HostUnshareHyp,
    HostDonateHyp,
    HypDonateHost,
    HypPin,
    HypUnpin,
    HostDonateGuest,
    HostShareGuest,
    HostUnshareGuest,
    GuestShareHost,
    GuestUnshareHost,
    GuestRelinquish,
    InitRipas,
    Teardown,
    HostAccess,
    GuestAccess,
    HostShareFfa,
    HostUnshareFfa,
}

impl CallName {
    const ALL: [(&'static str, CallName, usize, usize); 18] = [
        // name, call, required arguments, optional trailing arguments
        ("host_share_hyp", CallName::HostShareHyp, 1, 1),
        ("host_unshare_hyp", CallName::HostUnshareHyp, 1, 1),
        ("host_donate_hyp", CallName::HostDonateHyp, 2, 0),
        ("hyp_donate_host", CallName::HypDonateHost, 2, 0),
        ("hyp_pin", CallName::HypPin, 1, 1),
        ("hyp_unpin", CallName::HypUnpin, 1, 1),
        ("host_donate_guest", CallName::HostDonateGuest, 3, 1),
        ("host_share_guest", CallName::HostShareGuest, 3, 1),
        ("host_unshare_guest", CallName::HostUnshareGuest, 2, 1),
        ("guest_share_host", CallName::GuestShareHost, 2, 1),
        ("guest_unshare_host", CallName::GuestUnshareHost, 2, 1),
        ("guest_relinquish", CallName::GuestRelinquish, 2, 1),
        ("init_ripas", CallName::InitRipas, 3, 0),
        ("teardown", CallName::Teardown, 1, 0),
        ("host_access", CallName::HostAccess, 1, 0),
        ("guest_access", CallName::GuestAccess, 2, 0),
        ("host_share_ffa", CallName::HostShareFfa, 2, 0),
        ("host_unshare_ffa", CallName::HostUnshareFfa, 2, 0),
    ];

    fn lookup(word: &str) -> Option<(CallName, usize, usize)> {
        Self::ALL.iter().find(|(n, ..)| *n == word).map(|&(_, c, req, opt)| (c, req, opt))
    }

    /// The name as written in scenarios.
    #[must_use]
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, c, ..)| *c == self).map_or("?", |(n, ..)| n)
    }

    fn is_access(self) -> bool {
        matches!(self, CallName::HostAccess | CallName::GuestAccess)
    }
}

/// The result a call is expected to have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    Ok,
    Errno(Errno),
    /// Any failure.
    Err,
    /// An access that faults.
    Fault,
    /// A guest access that exits to the host as MMIO.
    Mmio,
}

impl core::fmt::Display for Expected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Expected::Ok => f.write_str("ok"),
            Expected::Errno(e) => f.write_str(e.name()),
            Expected::Err => f.write_str("err"),
            Expected::Fault => f.write_str("fault"),
            Expected::Mmio => f.write_str("mmio"),
        }
    }
}

/// A guest page expectation in `expect`: guest, gfn, state.
pub type GuestExpect = (u32, u64, PageState);

/// One statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    Memory {
        base: u64,
        size: u64,
    },
    Guest {
        guest: u32,
        ipa_bits: u8,
    },
    Run {
        guest: u32,
    },
    Call {
        call: CallName,
        args: Vec<u64>,
        expect: Option<Expected>,
    },
    Expect {
        pfn: u64,
        host: PageState,
        hyp: PageState,
        guests: Vec<GuestExpect>,
    },
    Check,
    Dump {
        range: Option<(u64, u64)>,
    },
    /// A fresh machine with the same memory map: no guests, all pages the
    /// host's.
    Reset,
}

/// A statement and the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub statement: Statement,
}

/// Why a line could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub word: String,
    pub reason: &'static str,
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: cannot read '{}': {}", self.line, self.word, self.reason)
    }
}

fn number(word: &str, line: usize) -> Result<u64, ParseError> {
    let parsed = match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => word.replace('_', "").parse(),
    };
    parsed.map_err(|_| ParseError {
        line,
        word: word.into(),
        reason: "expected a decimal or 0x hex number",
    })
}

fn state(word: &str, line: usize) -> Result<PageState, ParseError> {
    Ok(match word {
        "OWNED" => PageState::Owned,
        "SHARED_OWNED" => PageState::SharedOwned,
        "SHARED_BORROWED" => PageState::SharedBorrowed,
        "NOPAGE" => PageState::NoPage,
        _ => {
            return Err(ParseError {
                line,
                word: word.into(),
                reason: "expected OWNED, SHARED_OWNED, SHARED_BORROWED or NOPAGE",
            });
        }
    })
}

fn expected(word: &str, line: usize, access: bool) -> Result<Expected, ParseError> {
    let e = match word {
        "ok" => Expected::Ok,
        "err" if !access => Expected::Err,
        "fault" if access => Expected::Fault,
        "mmio" if access => Expected::Mmio,
        "EPERM" => Expected::Errno(Errno::EPERM),
        "EINVAL" => Expected::Errno(Errno::EINVAL),
        "ENOMEM" => Expected::Errno(Errno::ENOMEM),
        "EBUSY" => Expected::Errno(Errno::EBUSY),
        "ENOENT" => Expected::Errno(Errno::ENOENT),
        _ => {
            let reason = if access {
                "expected ok, fault, mmio or an errno name"
            } else {
                "expected ok, err or an errno name (EPERM, EINVAL, ENOMEM, EBUSY, ENOENT)"
            };
            return Err(ParseError { line, word: word.into(), reason });
        }
    };
    Ok(e)
}

fn key_value<'a>(word: &'a str, key: &str, line: usize) -> Result<&'a str, ParseError> {
    word.strip_prefix(key).and_then(|w| w.strip_prefix('=')).ok_or_else(|| ParseError {
        line,
        word: word.into(),
        reason: "expected KEY=VALUE",
    })
}

fn guest_id(word: &str, line: usize) -> Result<u32, ParseError> {
    let g = number(word, line)?;
    u32::try_from(g).ok().filter(|g| (1..=share::MAX_GUESTS as u32).contains(g)).ok_or(ParseError {
        line,
        word: word.into(),
        reason: "guest numbers run from 1 to 32",
    })
}

fn parse_line(words: &[&str], line: usize) -> Result<Statement, ParseError> {
    let missing = |what: &'static str| ParseError { line, word: words.join(" "), reason: what };
    let (&head, rest) = words.split_first().ok_or_else(|| missing("empty statement"))?;
    let exact = |n: usize, what: &'static str| {
        if rest.len() == n { Ok(()) } else { Err(missing(what)) }
    };
    Ok(match head {
        "memory" => {
            exact(2, "usage: memory BASE SIZE")?;
            Statement::Memory { base: number(rest[0], line)?, size: number(rest[1], line)? }
        }
        "guest" => {
            exact(2, "usage: guest G ipa_bits=N")?;
            let bits = number(key_value(rest[1], "ipa_bits", line)?, line)?;
            let ipa_bits = u8::try_from(bits).map_err(|_| ParseError {
                line,
                word: rest[1].into(),
                reason: "IPA size out of range",
            })?;
            Statement::Guest { guest: guest_id(rest[0], line)?, ipa_bits }
        }
        "run" => {
            exact(1, "usage: run G")?;
            Statement::Run { guest: guest_id(rest[0], line)? }
        }
        "check" => {
            exact(0, "usage: check")?;
            Statement::Check
        }
        "reset" => {
            exact(0, "usage: reset")?;
            Statement::Reset
        }
        "dump" => match rest {
            [] => Statement::Dump { range: None },
            [base, size] => {
                Statement::Dump { range: Some((number(base, line)?, number(size, line)?)) }
            }
            _ => return Err(missing("usage: dump [BASE SIZE]")),
        },
        "expect" => {
            if rest.len() < 3 {
                return Err(missing("usage: expect PFN host=STATE hyp=STATE [gG@GFN=STATE ...]"));
            }
            let pfn = number(rest[0], line)?;
            let host = state(key_value(rest[1], "host", line)?, line)?;
            let hyp = state(key_value(rest[2], "hyp", line)?, line)?;
            let mut guests = Vec::new();
            for word in &rest[3..] {
                let bad =
                    || ParseError { line, word: (*word).into(), reason: "expected gG@GFN=STATE" };
                let spec = word.strip_prefix('g').ok_or_else(bad)?;
                let (g, tail) = spec.split_once('@').ok_or_else(bad)?;
                let (gfn, st) = tail.split_once('=').ok_or_else(bad)?;
                guests.push((guest_id(g, line)?, number(gfn, line)?, state(st, line)?));
            }
            Statement::Expect { pfn, host, hyp, guests }
        }
        name => {
            let (call, required, optional) = CallName::lookup(name).ok_or(ParseError {
                line,
                word: name.into(),
                reason: "unknown statement or call",
            })?;
            let (args, expect) = match rest.iter().position(|w| *w == "->") {
                Some(at) => {
                    let result = rest
                        .get(at + 1..)
                        .filter(|r| r.len() == 1)
                        .ok_or_else(|| missing("expected exactly one result after ->"))?;
                    (&rest[..at], Some(expected(result[0], line, call.is_access())?))
                }
                None => (rest, None),
            };
            if args.len() < required || args.len() > required + optional {
                return Err(ParseError {
                    line,
                    word: name.into(),
                    reason: "wrong number of arguments for this call",
                });
            }
            let args = args.iter().map(|w| number(w, line)).collect::<Result<_, _>>()?;
            Statement::Call { call, args, expect }
        }
    })
}

/// Parses a whole file. Stops at the first error.
pub fn parse(text: &str) -> Result<Vec<Line>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = raw.split('#').next().unwrap_or("");
        let words: Vec<&str> = content.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        out.push(Line { number: i + 1, statement: parse_line(&words, i + 1)? });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        let lines = parse(
            "# comment\n\nmemory 0x4000_0000 4096\nguest 2 ipa_bits=40\n\
             host_share_guest 2 0x40000 0x8000000 -> ok  # trailing\n\
             expect 0x40000 host=SHARED_OWNED hyp=NOPAGE g2@0x8000000=SHARED_BORROWED\n\
             guest_access 2 0x80000000000 -> mmio\ndump\ncheck\n",
        )
        .unwrap();
        assert_eq!(lines.len(), 7);
        assert_eq!(
            lines[0],
            Line { number: 3, statement: Statement::Memory { base: 0x4000_0000, size: 4096 } }
        );
        assert_eq!(
            lines[2].statement,
            Statement::Call {
                call: CallName::HostShareGuest,
                args: vec![2, 0x40000, 0x800_0000],
                expect: Some(Expected::Ok)
            }
        );
        assert_eq!(
            lines[3].statement,
            Statement::Expect {
                pfn: 0x40000,
                host: PageState::SharedOwned,
                hyp: PageState::NoPage,
                guests: vec![(2, 0x800_0000, PageState::SharedBorrowed)]
            }
        );
    }

    #[test]
    fn errors_name_line_and_word() {
        let e = parse("memory 0 4096\nhost_share_hyp 0x4z0\n").unwrap_err();
        assert_eq!((e.line, e.word.as_str()), (2, "0x4z0"));
        let e = parse("frobnicate 1\n").unwrap_err();
        assert_eq!((e.line, e.word.as_str()), (1, "frobnicate"));
        let e = parse("host_share_hyp 1 -> EWHAT\n").unwrap_err();
        assert_eq!(e.word, "EWHAT");
        let e = parse("host_access 1 -> err\n").unwrap_err();
        assert_eq!(e.word, "err");
        let e = parse("host_donate_hyp 1\n").unwrap_err();
        assert_eq!(e.reason, "wrong number of arguments for this call");
        let e = parse("expect 1 host=OWNED hyp=MAYBE\n").unwrap_err();
        assert_eq!(e.word, "MAYBE");
        let e = parse("guest 0 ipa_bits=40\n").unwrap_err();
        assert_eq!(e.word, "0");
    }
}
