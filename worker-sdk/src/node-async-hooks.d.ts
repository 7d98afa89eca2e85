// The one Node API the SDK uses, provided by workerd under the `nodejs_als` compatibility flag.
declare module "node:async_hooks" {
  export class AsyncLocalStorage<T> {
    run<R>(store: T, fn: () => R): R;
    getStore(): T | undefined;
  }
}
