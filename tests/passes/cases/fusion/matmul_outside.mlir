// RUN: fusion dce
// tanh(matmul(x + 1, w)): matmul stays outside the kernels (it goes to BLAS), with one
// kernel before it and one after.
func @main(%x: tensor<4x3xf32>, %w: tensor<3x5xf32>) {
  %one = constant {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
  %a = add %x, %one : (tensor<4x3xf32>, tensor<f32>) -> tensor<4x3xf32>
  %mm = matmul %a, %w : (tensor<4x3xf32>, tensor<3x5xf32>) -> tensor<4x5xf32>
  %t = tanh %mm : (tensor<4x5xf32>) -> tensor<4x5xf32>
  return %t : (tensor<4x5xf32>)
}
// CHECK:      [[A:%[0-9]+]] = fused %arg0
// CHECK:        add
// CHECK:      [[MM:%[0-9]+]] = matmul [[A]], %arg1
// CHECK-NEXT: [[T:%[0-9]+]] = fused [[MM]]
// CHECK-NEXT: ^bb0
// CHECK-NEXT:   tanh
// CHECK:      return [[T]]
