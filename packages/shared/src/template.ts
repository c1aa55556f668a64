import { lstatSync, readFileSync, realpathSync } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import type { Liquid, LiquidOptions } from 'liquidjs';
import type { Json } from './schema.js';

/**
 * Templates for `file` resources, in Liquid (LiquidJS): `{{ traits.os_id }}`, `{% if %}`,
 * `{% for %}`, filters; readable to anyone who writes Jinja for Salt or Ansible. Liquid has no
 * way to call JavaScript: a template sees only the data it is given (traits, vars, hostname),
 * own properties only, so no prototype or constructor chain leads to Node. It reads files only
 * through the FS below, which serves regular files inside the bundle and nothing else. Render
 * time, memory and output size are bounded, so a hostile template costs one failed resource.
 */
export interface TemplateScope {
  hostname: string;
  traits: Record<string, Json>;
  vars: Record<string, Json>;
  /** The secrets this host may read, fetched for the run (`{{ secret.db_password }}`). */
  secret?: Record<string, string>;
}

const SECRET_REF = /\bsecret\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\])/g;
const INCLUDE = /\{%-?\s*(?:include|render|layout)\s+['"]([^'"]+)['"]/g;

export const TEMPLATE_LIMITS = Object.freeze({
  /** Characters of template text parsed per render (the template and what it includes). */
  parseChars: 1024 * 1024,
  renderMs: 2000,
  /** LiquidJS's allocation budget (string and array growth inside filters and loops). */
  memory: 64 * 1024 * 1024,
  outputBytes: 4 * 1024 * 1024,
  fileBytes: 1024 * 1024,
});

/** A template problem, already phrased as `templates/x.liquid:3: reason` (bundle-relative). */
export class TemplateError extends Error {
  override name = 'TemplateError';
}

/** The only files a template may include: regular files (no links) inside `root`. */
function bundleFs(root: string, read: Map<string, string>): NonNullable<LiquidOptions['fs']> {
  const inside = (file: string): string => {
    const abs = resolve(root, file);
    if (!(abs === root || abs.startsWith(root + sep)) || abs.includes('\0'))
      throw new Error(`${file} is outside the config bundle; templates may include only files in the bundle`);
    return abs;
  };
  const checkSync = (abs: string) => {
    const st = lstatSync(abs);
    if (!st.isFile()) throw new Error(`${relative(root, abs)} is not a regular file`);
    if (st.size > TEMPLATE_LIMITS.fileBytes) throw new Error(`${relative(root, abs)} is over the template size limit`);
  };
  return {
    exists: async (f) => {
      try {
        return (await lstat(inside(f))).isFile();
      } catch {
        return false;
      }
    },
    existsSync: (f) => {
      try {
        return lstatSync(inside(f)).isFile();
      } catch {
        return false;
      }
    },
    readFile: async (f) => {
      const abs = inside(f);
      const st = await lstat(abs);
      if (!st.isFile() || st.size > TEMPLATE_LIMITS.fileBytes)
        throw new Error(`${relative(root, abs)} is not a regular file within the size limit`);
      const text = await readFile(abs, 'utf8');
      read.set(text, relative(root, abs));
      return text;
    },
    readFileSync: (f) => {
      const abs = inside(f);
      checkSync(abs);
      const text = readFileSync(abs, 'utf8');
      read.set(text, relative(root, abs));
      return text;
    },
    // Includes resolve against the bundle root (or the including file with "./"), never "/".
    resolve: (dir, file, ext) => {
      if (isAbsolute(file)) throw new Error(`${file}: includes name a file in the bundle, not an absolute path`);
      return inside(resolve(dir, file + (ext && !file.endsWith(ext) ? ext : '')));
    },
    contains: async (r, f) => f.startsWith(resolve(r) + sep),
    containsSync: (r, f) => f.startsWith(resolve(r) + sep),
    dirname,
    sep,
  };
}

let liquidModule: Promise<typeof import('liquidjs')> | undefined;

/**
 * One engine per bundle directory and run: parsed templates are cached for that run only, so
 * a new bundle never sees an old parse.
 */
export class Templates {
  private readonly root: string;
  private engine: Liquid | undefined;
  /** Template text -> its bundle path: LiquidJS's errors carry the text of the file, not always its name. */
  private readonly read = new Map<string, string>();

  constructor(bundleDir: string) {
    // The bundle is extracted by the envoy into its own state dir; realpath once so the
    // containment checks compare like with like.
    this.root = realpathSync(bundleDir);
  }

  private async liquid(): Promise<Liquid> {
    if (this.engine) return this.engine;
    // Loaded on first use: an agent whose policies have no templates never pays for it.
    liquidModule ??= import('liquidjs');
    const { Liquid } = await liquidModule;
    this.engine = new Liquid({
      root: [this.root],
      partials: [this.root],
      layouts: [this.root],
      fs: bundleFs(this.root, this.read),
      relativeReference: true,
      ownPropertyOnly: true,
      strictFilters: true,
      strictVariables: true,
      lenientIf: true,
      cache: true,
      parseLimit: TEMPLATE_LIMITS.parseChars,
      renderLimit: TEMPLATE_LIMITS.renderMs,
      memoryLimit: TEMPLATE_LIMITS.memory,
    });
    return this.engine;
  }

  /** Parses `file` (bundle-relative) without rendering it: the hub's publish-time check. */
  async check(file: string): Promise<void> {
    const liquid = await this.liquid();
    try {
      await liquid.parseFile(file);
    } catch (e) {
      throw this.locate(e, file);
    }
  }

  /** Renders `file` (bundle-relative) with the host's traits and the policy's vars. */
  async render(file: string, scope: TemplateScope): Promise<string> {
    const liquid = await this.liquid();
    let out: string;
    try {
      const tpl = await liquid.parseFile(file);
      out = String(
        await liquid.render(tpl, {
          hostname: scope.hostname,
          traits: scope.traits,
          vars: scope.vars,
          secret: scope.secret ?? {},
        }),
      );
    } catch (e) {
      throw this.locate(e, file);
    }
    if (Buffer.byteLength(out) > TEMPLATE_LIMITS.outputBytes)
      throw new TemplateError(
        `${file}: renders to more than ${TEMPLATE_LIMITS.outputBytes} bytes; refusing to write it`,
      );
    return out;
  }

  /**
   * The secrets `file` refers to (`secret.name` or `secret["name"]`), following includes named
   * literally: what the envoy asks the hub for before it renders. A secret reached only through
   * a variable name (`secret[key]`) is not seen, and fails as an undefined variable.
   */
  secretNames(file: string): string[] {
    const fs = bundleFs(this.root, this.read);
    const names = new Set<string>();
    const seen = new Set<string>();
    const walk = (rel: string, depth: number) => {
      if (depth > 10 || seen.has(rel)) return;
      seen.add(rel);
      let text: string;
      try {
        text = fs.readFileSync(fs.resolve(this.root, rel, '.liquid'));
      } catch {
        return;
      }
      for (const m of text.matchAll(SECRET_REF)) names.add((m[1] ?? m[2]) as string);
      for (const m of text.matchAll(INCLUDE)) walk(m[1] as string, depth + 1);
    };
    walk(file, 0);
    return [...names].sort();
  }

  /** LiquidJS says "..., file:/abs/x, line:3, col:5"; operators want "templates/x.liquid:3: ...". */
  private locate(e: unknown, file: string): TemplateError {
    const err = e as {
      message?: string;
      token?: { file?: string; input?: string; getPosition?: () => [number, number] };
    };
    const raw = String(err.message ?? e);
    // The innermost file named in the message wins: an error inside an include points there.
    const inner = /file:(\/[^,\n]*), line:(\d+)/.exec(raw);
    const where = inner?.[1]
      ? relative(this.root, inner[1])
      : ((err.token?.input !== undefined ? this.read.get(err.token.input) : undefined) ?? file);
    const line = inner?.[2] ?? err.token?.getPosition?.()[0];
    const reason = raw
      .replace(/, (file:[^,]*, )?line:\d+, col:\d+$/s, '')
      .replace(/^ENOENT: /, '')
      .split('\n')[0]
      ?.replaceAll(this.root + sep, '')
      .slice(0, 500);
    return new TemplateError(`${where}${line ? `:${line}` : ''}: ${reason}`);
  }
}
