// wgsl_reflect's package "main" is a CommonJS file under "type": "module", which
// Node cannot load; we import its ESM build by path and borrow the package types.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
