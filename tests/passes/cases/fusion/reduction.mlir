// RUN: fusion dce
// sum(exp(x) * y, axis=1) / 8: the reduction joins its elementwise producers and closes
// the group; the division of its result is the next kernel.
func.func @main(%x: tensor<4x8xf64>, %y: tensor<4x8xf64>) -> tensor<4xf64> {
  %e = "gj.exp"(%x) : (tensor<4x8xf64>) -> tensor<4x8xf64>
  %m = "gj.mul"(%e, %y) : (tensor<4x8xf64>, tensor<4x8xf64>) -> tensor<4x8xf64>
  %s = "gj.reduce_sum"(%m) {axes = [1], keepdims = false} : (tensor<4x8xf64>) -> tensor<4xf64>
  %eight = "gj.constant"() {value = dense<8.0> : tensor<f64>} : () -> tensor<f64>
  %d = "gj.div"(%s, %eight) : (tensor<4xf64>, tensor<f64>) -> tensor<4xf64>
  func.return %d : tensor<4xf64>
}
// CHECK:      [[R:%[0-9]+]] = "gj.fused"(%arg0, %arg1) ({
// CHECK-NEXT: ^bb0([[X:%arg[0-9]+]]: tensor<4x8xf64>, [[Y:%arg[0-9]+]]: tensor<4x8xf64>):
// CHECK-NEXT:   [[E:%[0-9]+]] = "gj.exp"([[X]]
// CHECK-NEXT:   [[M:%[0-9]+]] = "gj.mul"([[E]], [[Y]]
// CHECK-NEXT:   [[S:%[0-9]+]] = "gj.reduce_sum"([[M]]
// CHECK-NEXT:   "gj.yield"([[S]]) : (tensor<4xf64>) -> ()
// CHECK-NEXT: }) : (tensor<4x8xf64>, tensor<4x8xf64>) -> tensor<4xf64>
// CHECK-NEXT: [[D:%[0-9]+]] = "gj.fused"([[R]]) ({
// CHECK:        "gj.div"
// CHECK:      func.return [[D]]
