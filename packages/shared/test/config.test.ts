import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostPort, loadConfig, parseConfigText, parseHostPort } from '../src/config.js';
import { AxleError, ErrorCode } from '../src/errors.js';
import { arr, bool, def, duration, int, obj, oneOf, opt, str, type Issue } from '../src/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'axle-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function writeConfig(text: string): string {
  const file = join(dir, `c${n++}.yaml`);
  writeFileSync(file, text);
  return file;
}

const hubSchema = obj({
  server_id: str({ min: 1 }),
  listen: hostPort(),
  data_dir: str({ min: 1 }),
  key_file: opt(str()),
  spanner: obj({
    role: oneOf(['hub', 'spoke']),
    spokes: def(arr(obj({ id: str({ min: 1 }), addr: hostPort(), patterns: def(arr(str()), []) })), []),
    auto_failover: def(
      obj({ enabled: def(bool(), true), threshold: def(int({ min: 1 }), 3), interval: def(duration(), 30_000) }),
      { enabled: true, threshold: 3, interval: 30_000 },
    ),
  }),
});

function badConfig(f: () => unknown): AxleError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(AxleError);
    expect((e as AxleError).code).toBe(ErrorCode.BAD_CONFIG);
    return e as AxleError;
  }
  throw new Error('expected a BAD_CONFIG error');
}

describe('loadConfig', () => {
  it('loads a valid config with defaults applied, deep-frozen', () => {
    const file = writeConfig(`# hub
server_id: hub-a
listen: "0.0.0.0:1530"
data_dir: /var/lib/axle/hub
spanner:
  role: hub
  spokes:
    - { id: dc1, addr: "spoke1.example.com:1530", patterns: ["*.dc1.*"] }
    - id: dc2
      addr: "[::1]:0"
  auto_failover: { interval: "1m30s" }
`);
    const cfg = loadConfig(file, hubSchema);
    expect(cfg).toEqual({
      server_id: 'hub-a',
      listen: '0.0.0.0:1530',
      data_dir: '/var/lib/axle/hub',
      spanner: {
        role: 'hub',
        spokes: [
          { id: 'dc1', addr: 'spoke1.example.com:1530', patterns: ['*.dc1.*'] },
          { id: 'dc2', addr: '[::1]:0', patterns: [] },
        ],
        auto_failover: { enabled: true, threshold: 3, interval: 90_000 },
      },
    });
    expect(cfg.key_file).toBeUndefined();
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(Object.isFrozen(cfg.spanner.spokes)).toBe(true);
    expect(Object.isFrozen(cfg.spanner.spokes[1]?.patterns)).toBe(true);
    expect(() => {
      (cfg.spanner.auto_failover as { threshold: number }).threshold = 9;
    }).toThrow(TypeError);
  });

  it('lists every problem at once, each with file, line and key path', () => {
    const file = writeConfig(`server_id: hub-a
listen: "0.0.0.0:1530"
spanner:
  role: hub
  treshold: 3
  spokes:
    - id: dc1
      addr: "spoke1.example.com:99999"
  auto_failover:
    threshold: "three"
    interval: "30 seconds"
`);
    const err = badConfig(() => loadConfig(file, hubSchema));
    const lines = err.message.split('\n');
    expect(lines[0]).toContain(file);
    expect(lines).toContain(`${file}:5: spanner.treshold: unknown key (expected one of: role, spokes, auto_failover)`);
    expect(lines).toContain(`${file}:1: data_dir: is required`);
    expect(lines.some((l) => l.startsWith(`${file}:8: spanner.spokes[0].addr: `) && l.includes('above 65535'))).toBe(
      true,
    );
    expect(lines.some((l) => l.startsWith(`${file}:10: spanner.auto_failover.threshold: expected an integer`))).toBe(
      true,
    );
    expect(
      lines.some((l) => l.startsWith(`${file}:11: spanner.auto_failover.interval: `) && l.includes('not a duration')),
    ).toBe(true);
    expect(lines).toHaveLength(6);
    const lineNos = lines.slice(1).map((l) => Number(l.slice(file.length + 1).split(':')[0]));
    expect(lineNos).toEqual([...lineNos].sort((x, y) => x - y));
  });

  it('reports a missing nested key at the line of the mapping that lacks it', () => {
    const err = badConfig(() =>
      parseConfigText('server_id: a\nlisten: "h:1"\ndata_dir: /d\nspanner:\n  spokes: []\n', 'x.yaml', hubSchema),
    );
    expect(err.message).toContain('x.yaml:4: spanner.role: is required');
  });

  it('names file, line and column for a YAML syntax error', () => {
    const file = writeConfig('server_id: a\nlisten: [1, 2\ndata_dir: /d\n');
    const err = badConfig(() => loadConfig(file, hubSchema));
    expect(err.message).toMatch(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:1: `));
  });

  it('refuses duplicate keys, several documents and unknown tags', () => {
    expect(badConfig(() => parseConfigText('a: 1\na: 2\n', 'd.yaml', hubSchema)).message).toContain(
      'd.yaml:2:1: Map keys must be unique',
    );
    expect(badConfig(() => parseConfigText('a: 1\n---\nb: 2\n', 'm.yaml', hubSchema)).message).toContain(
      'multiple documents',
    );
    expect(badConfig(() => parseConfigText('a: !!binary aGk=\n', 't.yaml', hubSchema)).message).toContain(
      't.yaml:1:4: Unresolved tag',
    );
  });

  it('refuses __proto__, constructor and prototype keys anywhere', () => {
    const err = badConfig(() =>
      parseConfigText(
        'server_id: a\nspanner:\n  spokes:\n    - __proto__: { polluted: true }\nconstructor: 1\n',
        'p.yaml',
        hubSchema,
      ),
    );
    expect(err.message).toContain('p.yaml:4: spanner.spokes[0].__proto__: the key "__proto__" is not allowed');
    expect(err.message).toContain('p.yaml:5: constructor: the key "constructor" is not allowed');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('refuses an alias bomb', () => {
    const rows = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (const [prev, name] of [
      ['a', 'b'],
      ['b', 'c'],
      ['c', 'd'],
      ['d', 'e'],
    ]) {
      rows.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    }
    const err = badConfig(() => parseConfigText(rows.join('\n') + '\n', 'bomb.yaml', hubSchema));
    expect(err.message).toContain('bomb.yaml: cannot expand aliases');
  });

  it('still allows a modest use of anchors and aliases', () => {
    const schema = obj({ a: arr(str()), b: arr(str()) });
    expect(parseConfigText('a: &common [x, y]\nb: *common\n', 'ok.yaml', schema)).toEqual({
      a: ['x', 'y'],
      b: ['x', 'y'],
    });
  });

  it('says an empty file is empty', () => {
    expect(badConfig(() => loadConfig(writeConfig(''), hubSchema)).message).toContain('is empty');
    expect(badConfig(() => loadConfig(writeConfig('# nothing yet\n'), hubSchema)).message).toContain('is empty');
  });

  it('names a missing file and what to do', () => {
    const file = join(dir, 'nope.yaml');
    const err = badConfig(() => loadConfig(file, hubSchema));
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/cannot read config file .*create it/);
  });

  it('reports a non-mapping document at the top', () => {
    expect(badConfig(() => parseConfigText('- a\n- b\n', 'l.yaml', hubSchema)).message).toContain(
      'l.yaml:1: (top): expected a mapping',
    );
  });
});

describe('hostPort', () => {
  const check = (v: unknown): Issue[] => {
    const issues: Issue[] = [];
    hostPort().parse(v, 'addr', issues);
    return issues;
  };

  it.each([
    'hub.example.com:1530',
    'localhost:0',
    '127.0.0.1:65535',
    '[::1]:1530',
    '[fe80::1]:80',
    'spoke_1.internal:1',
    'hub.:1',
  ])('accepts %s', (addr) => expect(check(addr)).toEqual([]));

  it.each([
    ['hub.example.com', 'missing ":port"'],
    [':1530', 'host is empty'],
    ['hub:', 'is not a number'],
    ['hub:65536', 'above 65535'],
    ['hub:-1', 'is not a number'],
    ['hub:1.5', 'is not a number'],
    ['::1:1530', 'brackets'],
    ['[::zz]:1', 'bracketed IPv6'],
    ['256.1.1.1:1', 'not a valid IPv4'],
    ['bad host:1', 'not a valid host name'],
    ['-bad.example:1', 'not a valid host name'],
  ])('rejects %s (%s)', (addr, why) => {
    const issues = check(addr);
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('addr');
    expect(issues[0]?.message).toContain(why);
  });

  it('rejects a non-string', () => {
    expect(check(1530)[0]?.message).toContain('expected a "host:port" string');
  });

  it('parseHostPort splits and strips IPv6 brackets', () => {
    expect(parseHostPort('hub.example.com:1530')).toEqual({ host: 'hub.example.com', port: 1530 });
    expect(parseHostPort('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(() => parseHostPort('nope')).toThrow(expect.objectContaining({ code: ErrorCode.INVALID }) as Error);
  });
});
