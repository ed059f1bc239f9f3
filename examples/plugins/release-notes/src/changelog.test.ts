// The plugin's own work, without a bus: `npm test` (node's test runner on dist/).

import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { CallerError, Changelog, sectionOf } from "./changelog.js";

const issue = (summary: string, issueType = "Task", labels: string[] = []) => ({
  summary,
  description: "",
  issueType,
  labels,
});

test("an issue goes under the section its type, labels and words say", () => {
  assert.equal(sectionOf(issue("Escape user input in search", "Task", ["security"])), "Security");
  assert.equal(sectionOf(issue("Deprecate the v1 export API")), "Deprecated");
  assert.equal(sectionOf(issue("Remove the legacy importer")), "Removed");
  assert.equal(sectionOf(issue("Checkout page is slow", "Bug")), "Fixed");
  assert.equal(sectionOf(issue("Users cannot sign in with SSO")), "Fixed");
  assert.equal(sectionOf(issue("Dark mode for the dashboard", "Story")), "Added");
  assert.equal(sectionOf(issue("Add CSV export to reports")), "Added");
  assert.equal(sectionOf(issue("Raise the upload limit to 50 MB")), "Changed");
});

test("the same issue twice is one line, replaced; a release moves Unreleased under its version", async () => {
  const book = new Changelog(await mkdtemp(join(tmpdir(), "changelog-")));
  await book.add({ key: "REL-1", section: "Fixed", text: "Login crash." });
  const again = await book.add({ key: "REL-1", section: "Fixed", text: "Login crash on SSO" });
  assert.equal(again.replaced, true);
  await book.add({ key: "", section: "Added", text: "Dark   mode" });
  const cut = await book.release("1.2.0", "2026-03-01");
  assert.equal(cut.entries, 2);
  assert.equal(cut.notes, "### Added\n\n- Dark mode\n\n### Fixed\n\n- Login crash on SSO (REL-1)");
  const text = await readFile(book.markdownPath, "utf-8");
  assert.match(text, /## \[Unreleased\]\n\n## \[1\.2\.0\] - 2026-03-01\n\n### Added\n\n- Dark mode\n/);
  assert.deepEqual(await book.notes(), { version: "Unreleased", notes: "", entries: 0 });
  assert.equal((await book.notes("1.2.0")).entries, 2);
});

test("what the caller got wrong is a CallerError, and changes nothing", async () => {
  const book = new Changelog(await mkdtemp(join(tmpdir(), "changelog-")));
  await assert.rejects(book.release("1.0.0"), CallerError); // nothing to release
  await book.add({ key: "A-1", section: "Changed", text: "Faster search" });
  await assert.rejects(book.release("v1"), /version must be semantic/);
  await assert.rejects(book.release("1.0.0", "2026-13-45"), /date must be YYYY-MM-DD/);
  await book.release("1.0.0", "2026-01-01");
  await book.add({ key: "A-2", section: "Changed", text: "Smaller bundle" });
  await assert.rejects(book.release("1.0.0"), /already released/);
  await assert.rejects(book.notes("9.9.9"), /no release "9.9.9"/);
  await assert.rejects(book.add({ key: "", section: "Misc" as never, text: "x" }), CallerError);
  assert.equal((await book.notes()).entries, 1);
});
