// RUN: fusion dce
// sum(exp(x) * y, axis=1) / 8: the reduction joins its elementwise producers and closes
// the group; the division of its result is the next kernel.
func @main(%x: tensor<4x8xf64>, %y: tensor<4x8xf64>) {
  %e = exp %x : (tensor<4x8xf64>) -> tensor<4x8xf64>
  %m = mul %e, %y : (tensor<4x8xf64>, tensor<4x8xf64>) -> tensor<4x8xf64>
  %s = reduce_sum %m {axes = [1], keepdims = false} : (tensor<4x8xf64>) -> tensor<4xf64>
  %eight = constant {value = dense<8.0> : tensor<f64>} : () -> tensor<f64>
  %d = div %s, %eight : (tensor<4xf64>, tensor<f64>) -> tensor<4xf64>
  return %d : (tensor<4xf64>)
}
// CHECK:      [[R:%[0-9]+]] = fused %arg0, %arg1 : (tensor<4x8xf64>, tensor<4x8xf64>) -> tensor<4xf64> {
// CHECK-NEXT: ^bb0([[X:%arg[0-9]+]]: tensor<4x8xf64>, [[Y:%arg[0-9]+]]: tensor<4x8xf64>):
// CHECK-NEXT:   [[E:%[0-9]+]] = exp [[X]]
// CHECK-NEXT:   [[M:%[0-9]+]] = mul [[E]], [[Y]]
// CHECK-NEXT:   [[S:%[0-9]+]] = reduce_sum [[M]]
// CHECK-NEXT:   yield [[S]] : (tensor<4xf64>)
// CHECK-NEXT: }
// CHECK-NEXT: [[D:%[0-9]+]] = fused [[R]] : (tensor<4xf64>) -> tensor<4xf64> {
// CHECK:        div
// CHECK:      return [[D]]
