// RUN: gemm dce
// An SGD step w - lr * (xᵀ @ g) becomes one gemm accumulating into w (alpha = -lr), with
// the product's transpose flags; so does c + (a @ b) and (s * a @ b) + c, s a scalar or
// a one-element constant.
func.func @main(%x: tensor<8x4xf32>, %g: tensor<8x3xf32>, %w: tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>) {
  %p = "gj.matmul"(%x, %g) {transpose_a = true, transpose_b = false} : (tensor<8x4xf32>, tensor<8x3xf32>) -> tensor<4x3xf32>
  %lr = "gj.constant"() {value = dense<0.5> : tensor<f32>} : () -> tensor<f32>
  %s = "gj.mul"(%p, %lr) : (tensor<4x3xf32>, tensor<f32>) -> tensor<4x3xf32>
  %new = "gj.sub"(%w, %s) : (tensor<4x3xf32>, tensor<4x3xf32>) -> tensor<4x3xf32>
  %q = "gj.matmul"(%x, %g) {transpose_a = true, transpose_b = false} : (tensor<8x4xf32>, tensor<8x3xf32>) -> tensor<4x3xf32>
  %sum = "gj.add"(%w, %q) : (tensor<4x3xf32>, tensor<4x3xf32>) -> tensor<4x3xf32>
  %r = "gj.matmul"(%x, %g) {transpose_a = true, transpose_b = false} : (tensor<8x4xf32>, tensor<8x3xf32>) -> tensor<4x3xf32>
  %two = "gj.constant"() {value = dense<[2.0]> : tensor<1xf32>} : () -> tensor<1xf32>
  %t = "gj.mul"(%two, %r) : (tensor<1xf32>, tensor<4x3xf32>) -> tensor<4x3xf32>
  %u = "gj.add"(%t, %w) : (tensor<4x3xf32>, tensor<4x3xf32>) -> tensor<4x3xf32>
  func.return %new, %sum, %u : tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>
}
// CHECK:      func.func @main(%arg0: tensor<8x4xf32>, %arg1: tensor<8x3xf32>, %arg2: tensor<4x3xf32>) -> (tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>) {
// CHECK-NEXT:   [[NEW:%[0-9]+]] = "gj.gemm"(%arg0, %arg1, %arg2) {alpha = -0.5, transpose_a = true, transpose_b = false}
// CHECK-NEXT:   [[SUM:%[0-9]+]] = "gj.gemm"(%arg0, %arg1, %arg2) {alpha = 1.0, transpose_a = true, transpose_b = false}
// CHECK-NEXT:   [[U:%[0-9]+]] = "gj.gemm"(%arg0, %arg1, %arg2) {alpha = 2.0, transpose_a = true, transpose_b = false}
// CHECK-NEXT:   func.return [[NEW]], [[SUM]], [[U]]
