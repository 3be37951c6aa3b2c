// RUN: fusion dce
// exp(b) has b's shape [8]; adding it to x broadcasts it to [4, 8]. The two loop nests
// differ, so they are two kernels (fusing them would compute exp 4 times per element).
func @main(%x: tensor<4x8xf64>, %b: tensor<8xf64>) {
  %e = exp %b : (tensor<8xf64>) -> tensor<8xf64>
  %y = add %x, %e : (tensor<4x8xf64>, tensor<8xf64>) -> tensor<4x8xf64>
  %t = tanh %y : (tensor<4x8xf64>) -> tensor<4x8xf64>
  return %t : (tensor<4x8xf64>)
}
// CHECK:      [[E:%[0-9]+]] = fused %arg1 : (tensor<8xf64>) -> tensor<8xf64> {
// CHECK:        exp
// CHECK-NOT:    add
// CHECK:      [[T:%[0-9]+]] = fused %arg0, [[E]] : (tensor<4x8xf64>, tensor<8xf64>) -> tensor<4x8xf64> {
// CHECK:        add
// CHECK-NEXT:   tanh
// CHECK:      return [[T]]
