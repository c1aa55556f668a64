import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TEMPLATE_LIMITS, Templates } from '@axle/shared';
import { tempDir } from '@axle/testkit';

let t: { dir: string; cleanup: () => void };
let bundle: string;
beforeEach(() => {
  t = tempDir('axle-tpl-');
  bundle = join(t.dir, 'live');
  mkdirSync(join(bundle, 'templates/partials'), { recursive: true });
});
afterEach(() => t.cleanup());

const scope = {
  hostname: 'web1.dc1.example.com',
  traits: { os_id: 'debian', cpus: 4, app: { role: 'web' } },
  vars: { workers: 8, upstreams: ['10.0.0.1', '10.0.0.2'] },
};
const tpl = (name: string, text: string) => writeFileSync(join(bundle, 'templates', name), text);
const render = (name: string) => new Templates(bundle).render(`templates/${name}`, scope);

describe('templates', () => {
  it('render traits, vars, loops, conditions, filters and includes from the bundle', async () => {
    tpl('partials/upstream.liquid', '{% for u in vars.upstreams %}server {{ u }};\n{% endfor %}');
    tpl(
      'nginx.conf.liquid',
      '# {{ hostname }}\nworker_processes {{ vars.workers | times: 2 }};\n{% if traits.os_id == "debian" %}user www-data;{% endif %}\n{% if traits.missing %}never{% endif %}role={{ traits.app.role | upcase }}\n{% include "templates/partials/upstream.liquid" %}',
    );
    expect(await render('nginx.conf.liquid')).toBe(
      '# web1.dc1.example.com\nworker_processes 16;\nuser www-data;\nrole=WEB\nserver 10.0.0.1;\nserver 10.0.0.2;\n',
    );
  });

  it('an undefined variable, an unknown filter or a syntax error names the template file and line', async () => {
    tpl('a.liquid', 'line 1\nline 2 {{ traits.no_such_trait }}\n');
    await expect(render('a.liquid')).rejects.toThrow(
      /^templates\/a\.liquid:2: undefined variable: traits\.no_such_trait/,
    );
    tpl('b.liquid', 'x\n\n{{ 1 | no_such_filter }}');
    await expect(new Templates(bundle).check('templates/b.liquid')).rejects.toThrow(
      /^templates\/b\.liquid:3: undefined filter: no_such_filter/,
    );
    tpl('c.liquid', '{% if x %}\nunclosed');
    await expect(render('c.liquid')).rejects.toThrow(/^templates\/c\.liquid:1: tag \{% if x %\} not closed/);
    tpl('d.liquid', 'ok\n{% include "templates/partials/bad.liquid" %}');
    tpl('partials/bad.liquid', '\n\n{{ vars.nope }}');
    await expect(render('d.liquid')).rejects.toThrow(
      /^templates\/partials\/bad\.liquid:3: undefined variable: vars\.nope/,
    );
  });

  describe('sandbox: a template reaches nothing but its data and the bundle', () => {
    it('cannot read files outside the bundle, by any path or link', async () => {
      symlinkSync('/etc/passwd', join(bundle, 'templates/passwd-link'));
      for (const inc of [
        '/etc/passwd',
        '../../../../../../etc/passwd',
        'templates/../../../etc/passwd',
        'templates/passwd-link',
      ]) {
        tpl('x.liquid', `{% include "${inc}" %}`);
        const out = render('x.liquid');
        await expect(out, inc).rejects.toThrow(/^templates\/x\.liquid:1: /);
        await expect(out, inc).rejects.not.toThrow(/root:x:0/);
        tpl('y.liquid', `{% render "${inc}" %}`);
        await expect(render('y.liquid'), inc).rejects.toThrow(/^templates\/y\.liquid:1: /);
      }
      await expect(new Templates(bundle).render('../../etc/passwd', scope)).rejects.toThrow();
    });

    it('sees no process, environment, globals, prototypes or constructors', async () => {
      process.env.AXLE_TEMPLATE_SECRET = 'leaked';
      try {
        for (const expr of [
          'process.env.AXLE_TEMPLATE_SECRET',
          'process',
          'global',
          'globalThis',
          'require',
          'env',
          'traits.constructor',
          'traits.constructor.constructor',
          'traits["__proto__"]',
          'vars.upstreams.constructor',
          'hostname.constructor',
          'vars.workers.constructor',
          'traits.app.toString',
        ]) {
          tpl('p.liquid', `[{{ ${expr} }}]`);
          // Strict variables: anything not in the data is an error, never a value.
          await expect(render('p.liquid'), expr).rejects.toThrow(/undefined variable/);
        }
        tpl('q.liquid', '[{% if traits.constructor %}yes{% endif %}{{ traits.constructor | default: "none" }}]');
        expect(await render('q.liquid')).toBe('[none]');
        tpl('r.liquid', '{{ "x" | append: process.env.AXLE_TEMPLATE_SECRET }}');
        await expect(render('r.liquid')).rejects.toThrow(/undefined variable/);
      } finally {
        delete process.env.AXLE_TEMPLATE_SECRET;
      }
    });

    it('bounds render time, memory and output size', async () => {
      tpl('loop.liquid', '{% for i in (1..100000000) %}{{ i }}{% endfor %}');
      await expect(render('loop.liquid')).rejects.toThrow(
        /^templates\/loop\.liquid:1: (memory alloc limit exceeded|template render limit exceeded)/,
      );
      tpl(
        'grow.liquid',
        "{% assign s = 'xxxxxxxxxxxxxxxx' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s }}",
      );
      await expect(render('grow.liquid')).rejects.toThrow(/limit exceeded/);
      // Under the allocation budget but over the output limit: refused before anything is written.
      tpl(
        'big.liquid',
        `{% for i in (1..${Math.ceil(TEMPLATE_LIMITS.outputBytes / 1000) + 10}) %}${'y'.repeat(1000)}{% endfor %}`,
      );
      await expect(render('big.liquid')).rejects.toThrow(/renders to more than \d+ bytes/);
    });
  });
});
