// RUN: dce
// while (i, a, b, junk): the result is a; the condition reads i; a's update reads b, so
// b stays though no result of it is used; junk feeds only itself, so it goes from the
// operands, both regions' arguments and the yield.
func.func @main(%x: tensor<f64>) -> tensor<f64> {
  %zero = "gj.constant"() {value = dense<0> : tensor<i32>} : () -> tensor<i32>
  %w:4 = "gj.while"(%zero, %x, %x, %x) ({
  ^bb0(%i: tensor<i32>, %a: tensor<f64>, %b: tensor<f64>, %junk: tensor<f64>):
    %ten = "gj.constant"() {value = dense<10> : tensor<i32>} : () -> tensor<i32>
    %go = "gj.less"(%i, %ten) : (tensor<i32>, tensor<i32>) -> tensor<i1>
    "gj.condition"(%go) : (tensor<i1>) -> ()
  }, {
  ^bb0(%i2: tensor<i32>, %a2: tensor<f64>, %b2: tensor<f64>, %junk2: tensor<f64>):
    %one = "gj.constant"() {value = dense<1> : tensor<i32>} : () -> tensor<i32>
    %i3 = "gj.add"(%i2, %one) : (tensor<i32>, tensor<i32>) -> tensor<i32>
    %a3 = "gj.add"(%a2, %b2) : (tensor<f64>, tensor<f64>) -> tensor<f64>
    %b3 = "gj.tanh"(%b2) : (tensor<f64>) -> tensor<f64>
    %junk3 = "gj.exp"(%junk2) : (tensor<f64>) -> tensor<f64>
    "gj.yield"(%i3, %a3, %b3, %junk3) : (tensor<i32>, tensor<f64>, tensor<f64>, tensor<f64>) -> ()
  }) : (tensor<i32>, tensor<f64>, tensor<f64>, tensor<f64>) -> (tensor<i32>, tensor<f64>, tensor<f64>, tensor<f64>)
  func.return %w#1 : tensor<f64>
}
// CHECK:      [[W:%[0-9]+]]:3 = "gj.while"(%0, %arg0, %arg0) ({
// CHECK-NEXT: ^bb0([[I:%arg[0-9]+]]: tensor<i32>, %{{arg[0-9]+}}: tensor<f64>, %{{arg[0-9]+}}: tensor<f64>):
// CHECK:        "gj.condition"
// CHECK-NEXT: }, {
// CHECK-NEXT: ^bb0([[I2:%arg[0-9]+]]: tensor<i32>, [[A2:%arg[0-9]+]]: tensor<f64>, [[B2:%arg[0-9]+]]: tensor<f64>):
// CHECK-NOT:    "gj.exp"
// CHECK:        [[I3:%[0-9]+]] = "gj.add"([[I2]]
// CHECK-NEXT:   [[A3:%[0-9]+]] = "gj.add"([[A2]], [[B2]]
// CHECK-NEXT:   [[B3:%[0-9]+]] = "gj.tanh"([[B2]]
// CHECK-NEXT:   "gj.yield"([[I3]], [[A3]], [[B3]]) : (tensor<i32>, tensor<f64>, tensor<f64>) -> ()
// CHECK-NEXT: }) : ({{.*}}) -> (tensor<i32>, tensor<f64>, tensor<f64>)
// CHECK-NEXT: func.return [[W]]#1
