;; The copy limit: memory.copy of the same bytes a workload moves, in the same process.
;; Compiled at run time with wabt's wat2wasm (harness/bench/copylimit.ts); the memory is
;; imported so that the host chooses its size (and, for the SharedArrayBuffer run, `shared`).
(module
  (import "env" "memory" (memory 1))
  ;; count copies of len bytes; the i-th goes from src + (i*srcStride mod wrap)
  ;; to dst + (i*dstStride mod wrap)
  (func (export "seq") (param $dst i32) (param $dstStride i32) (param $src i32) (param $srcStride i32)
                       (param $len i32) (param $count i32) (param $wrap i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (memory.copy
          (i32.add (local.get $dst) (i32.rem_u (i32.mul (local.get $i) (local.get $dstStride)) (local.get $wrap)))
          (i32.add (local.get $src) (i32.rem_u (i32.mul (local.get $i) (local.get $srcStride)) (local.get $wrap)))
          (local.get $len))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))
  ;; count copies of len bytes from src + list[i] (u32 byte offsets) to dst + (i mod 8)*len
  (func (export "gather") (param $dst i32) (param $src i32) (param $list i32) (param $len i32) (param $count i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (memory.copy
          (i32.add (local.get $dst) (i32.mul (i32.and (local.get $i) (i32.const 7)) (local.get $len)))
          (i32.add (local.get $src) (i32.load (i32.add (local.get $list) (i32.shl (local.get $i) (i32.const 2)))))
          (local.get $len))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))))
