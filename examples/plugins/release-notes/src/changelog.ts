// The plugin's own work: a Keep a Changelog CHANGELOG.md (https://keepachangelog.com),
// kept as JSON beside it so that every change is a rewrite of both, never a Markdown parse.

import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const SECTIONS = ["Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"] as const;
export type Section = (typeof SECTIONS)[number];

export interface Entry {
  key: string; // the Jira key, or "" for an entry without one
  section: Section;
  text: string;
}

export interface Release {
  version: string;
  date: string; // YYYY-MM-DD
  entries: Entry[];
}

interface Book {
  unreleased: Entry[];
  releases: Release[]; // newest first
}

/** The request is at fault (bad parameters, a version that exists): answered with
 * `callerError: true`, so the orchestrator neither retries it nor blames the plugin. */
export class CallerError extends Error {
  override name = "InvalidParams";
}

/** The `handle_issue` parameters (docs/protocol.md): what the orchestrator sends. */
export interface Issue {
  key: string;
  summary: string;
  description: string;
  issueType: string;
  labels: string[];
  components: string[];
  files: string[];
}

const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

function words(text: string): Set<string> {
  return new Set(
    text
      .toLowerCase()
      .split(/[^a-z0-9]+/)
      .filter(Boolean),
  );
}

/** The section an issue belongs under, from its type, labels and wording. */
export function sectionOf(issue: Pick<Issue, "summary" | "description" | "issueType" | "labels">): Section {
  const said = words(`${issue.summary} ${issue.labels.join(" ")}`);
  const type = issue.issueType.toLowerCase();
  const any = (...candidates: string[]): boolean => candidates.some((word) => said.has(word));
  if (any("security", "cve", "vulnerability", "xss", "csrf", "injection")) return "Security";
  if (any("deprecate", "deprecated", "deprecation")) return "Deprecated";
  if (any("remove", "removed", "drop", "delete")) return "Removed";
  if (
    type === "bug" ||
    any("fix", "fixes", "fixed", "bug", "crash", "broken", "regression", "cannot", "error")
  )
    return "Fixed";
  if (
    ["story", "new feature", "feature", "epic"].includes(type) ||
    any("add", "new", "introduce", "support", "create")
  ) {
    return "Added";
  }
  return "Changed";
}

function entryLine(entry: Entry): string {
  return `- ${entry.text}${entry.key ? ` (${entry.key})` : ""}`;
}

function renderEntries(entries: Entry[]): string[] {
  const lines: string[] = [];
  for (const section of SECTIONS) {
    const mine = entries.filter((entry) => entry.section === section);
    if (mine.length > 0) lines.push(`### ${section}`, "", ...mine.map(entryLine), "");
  }
  return lines;
}

export function render(book: Book): string {
  const lines = [
    "# Changelog",
    "",
    "All notable changes to this project are documented in this file.",
    "The format is based on [Keep a Changelog](https://keepachangelog.com/en/1.1.0/).",
    "",
    "## [Unreleased]",
    "",
    ...renderEntries(book.unreleased),
  ];
  for (const release of book.releases) {
    lines.push(`## [${release.version}] - ${release.date}`, "", ...renderEntries(release.entries));
  }
  return lines.join("\n").replace(/\n+$/, "\n");
}

/** One CHANGELOG.md and its JSON twin in `folder`; changes are serialised, and each is
 * written to a temporary file renamed into place, so a reader never sees half of one. */
export class Changelog {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly folder: string) {}

  get markdownPath(): string {
    return join(this.folder, "CHANGELOG.md");
  }

  private get jsonPath(): string {
    return join(this.folder, "changelog.json");
  }

  private async load(): Promise<Book> {
    try {
      return JSON.parse(await readFile(this.jsonPath, "utf-8")) as Book;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { unreleased: [], releases: [] };
      throw error;
    }
  }

  private async save(book: Book): Promise<void> {
    await mkdir(this.folder, { recursive: true });
    for (const [path, text] of [
      [this.jsonPath, `${JSON.stringify(book, null, 2)}\n`],
      [this.markdownPath, render(book)],
    ] as const) {
      const temporary = `${path}.${process.pid}.tmp`;
      await writeFile(temporary, text, "utf-8");
      await rename(temporary, path);
    }
  }

  /** Run `change` on the book, one change at a time, and save what it returns. */
  private change<T>(change: (book: Book) => T): Promise<T> {
    const run = this.queue.then(async () => {
      const book = await this.load();
      const result = change(book);
      await this.save(book);
      return result;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Add an entry under Unreleased. An issue already there is replaced, not repeated: a
   * request delivered twice (delivery is at least once) leaves one entry. */
  async add(entry: Entry): Promise<{ entry: string; section: Section; replaced: boolean }> {
    if (!SECTIONS.includes(entry.section)) {
      throw new CallerError(
        `section must be one of ${SECTIONS.join(", ")}, not ${JSON.stringify(entry.section)}`,
      );
    }
    const text = entry.text.trim().replace(/\s+/g, " ").replace(/\.$/, "");
    if (!text) throw new CallerError("an entry needs some text");
    return this.change((book) => {
      const clean: Entry = { key: entry.key.trim(), section: entry.section, text };
      const at = clean.key ? book.unreleased.findIndex((old) => old.key === clean.key) : -1;
      if (at >= 0) book.unreleased[at] = clean;
      else book.unreleased.push(clean);
      return { entry: entryLine(clean), section: clean.section, replaced: at >= 0 };
    });
  }

  /** Cut `version`: the Unreleased entries become its notes, dated `date` (today, UTC). */
  async release(
    version: string,
    date?: string,
  ): Promise<{ version: string; date: string; entries: number; notes: string }> {
    if (!SEMVER.test(version))
      throw new CallerError(`version must be semantic (1.4.0), not ${JSON.stringify(version)}`);
    const day = date ?? new Date().toISOString().slice(0, 10);
    if (!DATE.test(day) || Number.isNaN(Date.parse(day)))
      throw new CallerError(`date must be YYYY-MM-DD, not ${JSON.stringify(day)}`);
    return this.change((book) => {
      if (book.releases.some((release) => release.version === version)) {
        throw new CallerError(`version ${version} is already released`);
      }
      if (book.unreleased.length === 0) throw new CallerError("nothing to release: Unreleased is empty");
      const release: Release = { version, date: day, entries: book.unreleased };
      book.releases.unshift(release);
      book.unreleased = [];
      return {
        version,
        date: day,
        entries: release.entries.length,
        notes: renderEntries(release.entries).join("\n").trim(),
      };
    });
  }

  /** The notes of `version` (default: what is unreleased so far) as Markdown. */
  async notes(version?: string): Promise<{ version: string; notes: string; entries: number }> {
    await this.queue;
    const book = await this.load();
    const entries =
      version === undefined
        ? book.unreleased
        : book.releases.find((release) => release.version === version)?.entries;
    if (entries === undefined) throw new CallerError(`no release ${JSON.stringify(version)}`);
    return {
      version: version ?? "Unreleased",
      notes: renderEntries(entries).join("\n").trim(),
      entries: entries.length,
    };
  }
}
