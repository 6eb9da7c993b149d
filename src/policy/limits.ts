/**
 * Bounds on what reading a policy may cost. Every file dockwall reads is treated as hostile, so each
 * is far above any real policy, yet low enough that memory and time stay bounded whatever the file.
 */

import type { ReadLimit } from "./read-file.js";

const MiB = 1024 * 1024;

/**
 * The policy file. A large hand-written policy is a few kilobytes; 1 MiB is two hundred times that.
 * Not more, because the YAML tree is costly: measured, 1.1 MB of short entries parses in 2.4 s into
 * 300 MB (4 MiB: 17 s and 840 MB). Long address lists belong in group files, which cost far less.
 */
export const POLICY_MAX_BYTES = 1 * MiB;

/**
 * All group files of one policy together (a file named by several groups is read once). 64 MiB is
 * about 4.7 million IPv4 lines (measured: 4.7 million random addresses parse in 7.5 s with 800 MB
 * resident), over ten times the largest public blocklists. A budget for all files rather than one
 * per file, so a policy naming many big files cannot multiply it.
 */
export const GROUP_FILES_MAX_BYTES = 64 * MiB;

export const POLICY_LIMIT: ReadLimit = { maxBytes: POLICY_MAX_BYTES, what: "the policy" };
/** One group file alone; the loader lowers maxBytes to what the files before it have left. */
export const GROUP_FILE_LIMIT: ReadLimit = { maxBytes: GROUP_FILES_MAX_BYTES, what: "a group file" };

/**
 * Keys, list items and inline addresses the loader walks, counted with YAML aliases expanded: a
 * small file whose aliases repeat big lists (a "billion laughs") stops here instead of exhausting
 * memory. A real policy has a few hundred.
 */
export const POLICY_MAX_ITEMS = 100_000;

/**
 * Rules the entries ask for: an entry opens one rule per source, protocol and port range, so 400
 * sources by 300 ports is 120,000 rules from two short lines. A real policy compiles into a few
 * hundred; a group is one rule whatever its size.
 */
export const POLICY_MAX_RULES = 100_000;

/** Errors shown from one load; the rest are counted. A real mistake never makes more than a handful. */
export const MAX_ERRORS_SHOWN = 100;

/** Errors, and warnings, shown from one group file: a wrong file (a binary, a CSV) should not flood the terminal. */
export const GROUP_FILE_MAX_MESSAGES = 20;
