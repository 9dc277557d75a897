// Automatic JSX runtime. Elements are inert data: the renderer (render.js) walks them.

export const ELEMENT = Symbol.for("smithers.element");
export const Fragment = Symbol.for("smithers.fragment");

/**
 * @param {unknown} type
 * @param {Record<string, unknown> | null | undefined} props
 * @param {string | number | null} [key]
 */
export function jsx(type, props, key) {
  return { $$typeof: ELEMENT, type, props: props ?? {}, key: key == null ? null : String(key) };
}

export const jsxs = jsx;

// jsxDEV(type, props, key, isStatic, source, self): the dev-only arguments are ignored.
export const jsxDEV = (type, props, key) => jsx(type, props, key);

/**
 * Classic signature. Compilers fall back to it (imported from the package root) for
 * `<X {...p} key="k" />`, where the key comes after a spread.
 * @param {unknown} type
 * @param {Record<string, unknown> | null} [config]
 * @param {...unknown} children
 */
export function createElement(type, config, ...children) {
  const { key, ...props } = config ?? {};
  if (children.length === 1) props.children = children[0];
  else if (children.length > 1) props.children = children;
  return jsx(type, props, key);
}

/** @param {unknown} value */
export function isElement(value) {
  return typeof value === "object" && value !== null && value.$$typeof === ELEMENT;
}
