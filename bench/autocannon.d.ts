declare module "autocannon" {
  interface Histogram { average: number; mean: number; p50: number; p99: number; total: number }
  interface Result { requests: Histogram; latency: Histogram; errors: number; timeouts: number; non2xx: number; duration: number }
  interface Options { url: string; connections?: number; duration?: number; pipelining?: number; workers?: number }
  function autocannon(opts: Options): Promise<Result>;
  export default autocannon;
}
