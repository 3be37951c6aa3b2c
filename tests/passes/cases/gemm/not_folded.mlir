// RUN: gemm
// Left alone: a product that is read again (the gemm would compute it twice), a scale
// that is not a constant, an add that broadcasts, integers, and c - s * p read the wrong
// way round (s * p - c is not an accumulation into c). A scale of shape [1] is read
// without trouble (the fuzzer found it crashing the pass).
func.func @main(%a: tensor<4x4xf32>, %c: tensor<4x4xf32>, %v: tensor<4xf32>, %s: tensor<f32>, %i: tensor<4x4xi32>) -> (tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xi32>, tensor<4x4xf32>, tensor<4x4xf32>) {
  %p = "gj.matmul"(%a, %a) {transpose_a = false, transpose_b = false} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %kept = "gj.add"(%c, %p) : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %q = "gj.matmul"(%a, %a) {transpose_a = false, transpose_b = false} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %qs = "gj.mul"(%q, %s) : (tensor<4x4xf32>, tensor<f32>) -> tensor<4x4xf32>
  %scaled = "gj.add"(%c, %qs) : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %r = "gj.matmul"(%a, %a) {transpose_a = false, transpose_b = false} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %bias = "gj.add"(%r, %v) : (tensor<4x4xf32>, tensor<4xf32>) -> tensor<4x4xf32>
  %n = "gj.matmul"(%i, %i) {transpose_a = false, transpose_b = false} : (tensor<4x4xi32>, tensor<4x4xi32>) -> tensor<4x4xi32>
  %ints = "gj.add"(%i, %n) : (tensor<4x4xi32>, tensor<4x4xi32>) -> tensor<4x4xi32>
  %t = "gj.matmul"(%a, %a) {transpose_a = false, transpose_b = false} : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %back = "gj.sub"(%t, %c) : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %one = "gj.constant"() {value = dense<[0.5]> : tensor<1xf32>} : () -> tensor<1xf32>
  %half = "gj.mul"(%c, %one) : (tensor<4x4xf32>, tensor<1xf32>) -> tensor<4x4xf32>
  %plain = "gj.add"(%c, %half) : (tensor<4x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  func.return %kept, %p, %scaled, %bias, %ints, %back, %plain : tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xf32>, tensor<4x4xi32>, tensor<4x4xf32>, tensor<4x4xf32>
}
// CHECK-NOT: "gj.gemm"
// CHECK:     func.return
