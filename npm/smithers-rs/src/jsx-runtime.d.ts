// Automatic JSX runtime for smithers-rs (jsxImportSource "smithers-rs").

export interface SmithersElement<P = any> {
  readonly $$typeof: symbol;
  readonly type: unknown;
  readonly props: P;
  readonly key: string | null;
}

/** Anything a component may return or take as children. Text is ignored by the renderer. */
export type SmithersNode =
  | SmithersElement
  | string
  | number
  | boolean
  | null
  | undefined
  | readonly SmithersNode[];

export declare const ELEMENT: unique symbol;
export declare const Fragment: unique symbol;

export declare function jsx(type: unknown, props: Record<string, unknown> | null | undefined, key?: string | number | null): SmithersElement;
export declare const jsxs: typeof jsx;
export declare function jsxDEV(
  type: unknown,
  props: Record<string, unknown> | null | undefined,
  key?: string | number | null,
  isStatic?: boolean,
  source?: unknown,
  self?: unknown,
): SmithersElement;
export declare function createElement(type: unknown, config?: Record<string, unknown> | null, ...children: unknown[]): SmithersElement;
export declare function isElement(value: unknown): value is SmithersElement;

export declare namespace JSX {
  type Element = SmithersElement;
  type ElementType = (props: any) => SmithersNode;
  interface ElementChildrenAttribute {
    children: {};
  }
  interface IntrinsicAttributes {
    key?: string | number | null;
  }
  /** No host elements: `<div>` is a type error (and UNKNOWN_COMPONENT at render). */
  interface IntrinsicElements {}
}
