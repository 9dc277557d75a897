// What a built `.node` file is, read from its bytes (no tool of the target platform needed):
// its format and CPU, the build profile the addon was compiled with, the shared libraries it
// needs and, for glibc builds, the newest GLIBC_x.y symbol version it requires (the glibc
// floor of a machine that can load it), for macOS builds the oldest macOS it was linked for and
// whether it is code-signed, and
// whether it exports the entry point Node calls (`napi_register_module_v1`). Used by
// scripts/build-platforms.js, scripts/check-platforms.js and scripts/publish-guard.js.
import { readFileSync } from "node:fs";

/** What each platform package's addon must be. */
export const PLATFORMS = {
  "linux-x64-gnu": { triple: "x86_64-unknown-linux-gnu", format: "elf", cpu: "x86_64", libc: "glibc" },
  "linux-arm64-gnu": { triple: "aarch64-unknown-linux-gnu", format: "elf", cpu: "aarch64", libc: "glibc" },
  "linux-x64-musl": { triple: "x86_64-unknown-linux-musl", format: "elf", cpu: "x86_64", libc: "musl" },
  "linux-arm64-musl": { triple: "aarch64-unknown-linux-musl", format: "elf", cpu: "aarch64", libc: "musl" },
  // `macos`: the oldest macOS the build may require (MACOSX_DEPLOYMENT_TARGET): Node 20's floor
  // on Intel, the first macOS on Apple silicon.
  "darwin-x64": { triple: "x86_64-apple-darwin", format: "mach-o", cpu: "x86_64", macos: "10.15" },
  "darwin-arm64": { triple: "aarch64-apple-darwin", format: "mach-o", cpu: "arm64", macos: "11.0" },
};

/** The oldest glibc a gnu build may require (RHEL/CentOS 7, Amazon Linux 2). */
export const GLIBC_FLOOR = "2.17";

const ELF_MACHINES = { 0x3e: "x86_64", 0xb7: "aarch64" };
const MACHO_CPUS = { 0x01000007: "x86_64", 0x0100000c: "arm64" };
const PROFILE_MARKER = "smithers-build-profile=";

/** "2.17" < "2.28": compares dotted versions numerically. */
export function compareVersions(a, b) {
  const x = a.split(".").map(Number);
  const y = b.split(".").map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function cString(buf, at) {
  const end = buf.indexOf(0, at);
  return buf.toString("latin1", at, end < 0 ? buf.length : end);
}

/** Sections of a 64-bit little-endian ELF file: { name, type, offset, size, link }. */
function elfSections(buf) {
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    sections.push({
      nameAt: buf.readUInt32LE(at),
      type: buf.readUInt32LE(at + 4),
      offset: Number(buf.readBigUInt64LE(at + 0x18)),
      size: Number(buf.readBigUInt64LE(at + 0x20)),
      link: buf.readUInt32LE(at + 0x28),
    });
  }
  const names = sections[shstrndx];
  for (const s of sections) s.name = names ? cString(buf, names.offset + s.nameAt) : "";
  return sections;
}

const SHT_DYNAMIC = 6;
const SHT_DYNSYM = 11;
const SHT_GNU_VERNEED = 0x6ffffffe;
const DT_NEEDED = 1;

/** The entry point Node looks up in an addon it loads. */
export const NAPI_ENTRY = "napi_register_module_v1";

function elfInfo(buf) {
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error("not a 64-bit little-endian ELF file");
  const sections = elfSections(buf);
  const needed = [];
  const versions = new Set();
  const exported = [];
  for (const s of sections) {
    if (s.type === SHT_DYNSYM) {
      // Elf64_Sym: st_name u32, st_info u8, st_other u8, st_shndx u16, …; 24 bytes. Defined
      // (st_shndx != SHN_UNDEF) and global or weak.
      const strtab = sections[s.link];
      for (let at = s.offset; at + 24 <= s.offset + s.size; at += 24) {
        const bind = buf[at + 4] >> 4;
        if (buf.readUInt16LE(at + 6) !== 0 && (bind === 1 || bind === 2)) exported.push(cString(buf, strtab.offset + buf.readUInt32LE(at)));
      }
    } else if (s.type === SHT_DYNAMIC) {
      const strtab = sections[s.link];
      for (let at = s.offset; at + 16 <= s.offset + s.size; at += 16) {
        const tag = Number(buf.readBigInt64LE(at));
        if (tag === 0) break;
        if (tag === DT_NEEDED) needed.push(cString(buf, strtab.offset + Number(buf.readBigUInt64LE(at + 8))));
      }
    } else if (s.type === SHT_GNU_VERNEED) {
      const strtab = sections[s.link];
      let at = s.offset;
      for (;;) {
        const count = buf.readUInt16LE(at + 2);
        let aux = at + buf.readUInt32LE(at + 8);
        for (let i = 0; i < count; i++) {
          versions.add(cString(buf, strtab.offset + buf.readUInt32LE(aux + 8)));
          const next = buf.readUInt32LE(aux + 12);
          if (next === 0) break;
          aux += next;
        }
        const next = buf.readUInt32LE(at + 12);
        if (next === 0) break;
        at += next;
      }
    }
  }
  const glibc = [...versions]
    .filter((v) => v.startsWith("GLIBC_") && /^GLIBC_\d+(\.\d+)*$/.test(v))
    .map((v) => v.slice("GLIBC_".length))
    .sort(compareVersions);
  return {
    format: "elf",
    cpu: ELF_MACHINES[buf.readUInt16LE(18)] ?? `machine 0x${buf.readUInt16LE(18).toString(16)}`,
    sharedObject: buf.readUInt16LE(16) === 3,
    needed,
    maxGlibc: glibc.at(-1) ?? null,
    exportsEntry: exported.includes(NAPI_ENTRY),
    debugInfo: sections.some((s) => s.name === ".debug_info"),
  };
}

const LC_LOAD_DYLIB = 0xc;
const LC_LOAD_WEAK_DYLIB = 0x80000018;
const LC_REEXPORT_DYLIB = 0x8000001f;
const LC_VERSION_MIN_MACOSX = 0x24;
const LC_BUILD_VERSION = 0x32;
const LC_DYLD_INFO_ONLY = 0x80000022;
const LC_DYLD_EXPORTS_TRIE = 0x80000033;
const LC_CODE_SIGNATURE = 0x1d;
const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0;
const PLATFORM_MACOS = 1;

/** An unsigned LEB128 at `at`: [value, the offset after it]. */
function uleb(buf, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = buf[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [value, at];
  }
}

/**
 * The names a Mach-O image exports, from its export trie (what dyld binds against): each node
 * holds its terminal info (size, then flags and address) and edges (a name fragment, a child).
 */
function machoExports(buf, start, size) {
  const names = [];
  const visit = (offset, prefix, depth) => {
    if (offset >= size || depth > 256) return;
    let [terminal, at] = uleb(buf, start + offset);
    if (terminal > 0) names.push(prefix);
    at += terminal;
    const children = buf[at++];
    for (let i = 0; i < children; i++) {
      const edge = cString(buf, at);
      at += Buffer.byteLength(edge, "latin1") + 1;
      const [child, next] = uleb(buf, at);
      at = next;
      visit(child, prefix + edge, depth + 1);
    }
  };
  if (size > 0) visit(0, "", 0);
  return names;
}

/** A Mach-O version, xxxx.yy.zz in nibbles, as "11.0" (or "10.15.4"). */
const machoVersion = (v) => [v >>> 16, (v >>> 8) & 0xff, v & 0xff].filter((n, i) => i < 2 || n > 0).join(".");

function machoInfo(buf) {
  const cputype = buf.readUInt32LE(4);
  const filetype = buf.readUInt32LE(12);
  const ncmds = buf.readUInt32LE(16);
  const needed = [];
  let minMacos = null;
  let exported = [];
  let signed = false;
  // Load commands follow the 32-byte mach_header_64.
  for (let i = 0, at = 32; i < ncmds; i++) {
    const cmd = buf.readUInt32LE(at);
    if (cmd === LC_DYLD_INFO_ONLY) exported = machoExports(buf, buf.readUInt32LE(at + 40), buf.readUInt32LE(at + 44));
    else if (cmd === LC_DYLD_EXPORTS_TRIE) exported = machoExports(buf, buf.readUInt32LE(at + 8), buf.readUInt32LE(at + 12));
    else if (cmd === LC_CODE_SIGNATURE) signed = buf.readUInt32BE(buf.readUInt32LE(at + 8)) === CSMAGIC_EMBEDDED_SIGNATURE;
    else if (cmd === LC_LOAD_DYLIB || cmd === LC_LOAD_WEAK_DYLIB || cmd === LC_REEXPORT_DYLIB) needed.push(cString(buf, at + buf.readUInt32LE(at + 8)));
    else if (cmd === LC_BUILD_VERSION && buf.readUInt32LE(at + 8) === PLATFORM_MACOS) minMacos = machoVersion(buf.readUInt32LE(at + 12));
    else if (cmd === LC_VERSION_MIN_MACOSX) minMacos = machoVersion(buf.readUInt32LE(at + 8));
    at += buf.readUInt32LE(at + 4);
  }
  return {
    format: "mach-o",
    cpu: MACHO_CPUS[cputype] ?? `cputype 0x${cputype.toString(16)}`,
    sharedObject: filetype === 6 || filetype === 8, // MH_DYLIB, MH_BUNDLE
    needed,
    maxGlibc: null,
    minMacos,
    exportsEntry: exported.includes(`_${NAPI_ENTRY}`), // C names carry a leading underscore
    signed,
    debugInfo: buf.includes("__debug_info"),
  };
}

/**
 * Reads a `.node` file. Throws when it is neither ELF nor 64-bit Mach-O.
 * @param {string} file
 */
export function inspectBinary(file) {
  const buf = readFileSync(file);
  let info;
  if (buf.readUInt32BE(0) === 0x7f454c46) info = elfInfo(buf);
  else if (buf.readUInt32LE(0) === 0xfeedfacf) info = machoInfo(buf);
  else throw new Error(`${file}: neither an ELF nor a 64-bit Mach-O file`);
  const profiles = ["release", "debug"].filter((p) => buf.includes(`${PROFILE_MARKER}${p}`));
  return { ...info, file, sizeBytes: buf.length, profile: profiles.length === 1 ? profiles[0] : null };
}

/**
 * What is wrong with the addon of one platform package, as sentences (none: it may ship).
 * @param {string} abi a key of PLATFORMS
 * @param {ReturnType<typeof inspectBinary>} info
 */
export function problems(abi, info) {
  const want = PLATFORMS[abi];
  const out = [];
  if (info.format !== want.format) out.push(`is ${info.format}, not ${want.format}`);
  if (info.cpu !== want.cpu) out.push(`is built for ${info.cpu}, not ${want.cpu}`);
  if (!info.sharedObject) out.push("is not a shared library");
  if (!info.exportsEntry) out.push(`does not export ${NAPI_ENTRY} (Node could not load it)`);
  if (info.profile !== "release") out.push(info.profile === "debug" ? "is a debug build" : "carries no build-profile marker (not built from this source?)");
  if (info.debugInfo) out.push("carries debug info (.debug_info)");
  if (want.libc === "glibc") {
    if (!info.maxGlibc) out.push("requires no GLIBC_ symbol version (not a glibc build?)");
    else if (compareVersions(info.maxGlibc, GLIBC_FLOOR) > 0) out.push(`requires GLIBC_${info.maxGlibc}, newer than the floor ${GLIBC_FLOOR}`);
  }
  if (want.macos) {
    if (!info.minMacos) out.push("names no minimum macOS version (LC_BUILD_VERSION)");
    else if (compareVersions(info.minMacos, want.macos) > 0) out.push(`requires macOS ${info.minMacos}, newer than the floor ${want.macos} (MACOSX_DEPLOYMENT_TARGET)`);
    // What every Mac has: libSystem, libiconv, frameworks.
    const foreign = info.needed.filter((d) => !d.startsWith("/usr/lib/") && !d.startsWith("/System/Library/"));
    if (foreign.length) out.push(`links libraries a Mac does not have: ${foreign.join(", ")}`);
    // Apple silicon loads no unsigned code; an ad-hoc signature (what the linker adds) suffices.
    if (want.cpu === "arm64" && !info.signed) out.push("carries no code signature (LC_CODE_SIGNATURE): Apple silicon refuses to load it");
  }
  if (want.libc === "musl") {
    if (info.maxGlibc) out.push(`requires GLIBC_${info.maxGlibc}: not a musl build`);
    if (!info.needed.some((n) => /^libc\.(musl-[a-z0-9_]+\.)?so/.test(n))) out.push(`does not link musl's libc (needs: ${info.needed.join(", ") || "nothing"})`);
  }
  return out;
}
