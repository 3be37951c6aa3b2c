// RUN: fusion dce
// tanh(matmul(x + 1, w)): matmul stays outside the kernels (it goes to BLAS), with one
// kernel before it and one after.
func.func @main(%x: tensor<4x3xf32>, %w: tensor<3x5xf32>) -> tensor<4x5xf32> {
  %one = "gj.constant"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
  %a = "gj.add"(%x, %one) : (tensor<4x3xf32>, tensor<f32>) -> tensor<4x3xf32>
  %mm = "gj.matmul"(%a, %w) {transpose_a = false, transpose_b = false} : (tensor<4x3xf32>, tensor<3x5xf32>) -> tensor<4x5xf32>
  %t = "gj.tanh"(%mm) : (tensor<4x5xf32>) -> tensor<4x5xf32>
  func.return %t : tensor<4x5xf32>
}
// CHECK:      [[A:%[0-9]+]] = "gj.fused"(%arg0
// CHECK:        "gj.add"
// CHECK:      [[MM:%[0-9]+]] = "gj.matmul"([[A]], %arg1
// CHECK-NEXT: [[T:%[0-9]+]] = "gj.fused"([[MM]]
// CHECK-NEXT: ^bb0
// CHECK-NEXT:   "gj.tanh"
// CHECK:      func.return [[T]]
