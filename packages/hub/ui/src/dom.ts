/**
 * The only way this app builds DOM. Strings always become text nodes or attribute values,
 * never markup: there is no innerHTML anywhere, so a trait value like `<script>` or
 * `"><img onerror=...>` from an envoy shows as those characters and runs nothing.
 */
export type Child = Node | string | number | boolean | null | undefined | Child[];

export interface Props {
  class?: string | undefined;
  id?: string;
  title?: string | undefined;
  /** Only same-site paths; anything else is dropped, so no javascript: URL can get in. */
  href?: string;
  type?: string;
  name?: string;
  value?: string;
  placeholder?: string;
  for?: string;
  disabled?: boolean;
  selected?: boolean;
  required?: boolean;
  open?: boolean;
  autocomplete?: string;
  testid?: string;
  onclick?: (e: MouseEvent) => void;
  onsubmit?: (e: SubmitEvent) => void;
  onchange?: (e: Event) => void;
  oninput?: (e: Event) => void;
  [data: `data-${string}`]: string;
  [aria: `aria-${string}`]: string;
}

export function append(el: Node, c: Child): void {
  if (c === null || c === undefined || c === false) return;
  if (Array.isArray(c)) {
    for (const x of c) append(el, x);
    return;
  }
  el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Props | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'onclick' || k === 'onsubmit' || k === 'onchange' || k === 'oninput') {
        el.addEventListener(k.slice(2), v as EventListener);
      } else if (k === 'href') {
        const s = String(v);
        if (s.startsWith('/') && !s.startsWith('//')) el.setAttribute('href', s);
      } else if (k === 'testid') {
        el.setAttribute('data-testid', String(v));
      } else if (
        k === 'value' &&
        (el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLOptionElement)
      ) {
        el.value = String(v);
        el.setAttribute('value', String(v));
      } else if (v === true) {
        el.setAttribute(k, '');
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';

export function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function replace(el: Element, ...children: Child[]): void {
  clear(el);
  append(el, children);
}

/** A path segment from envoy data, safe inside a same-site href. */
export function seg(s: string): string {
  return encodeURIComponent(s);
}
